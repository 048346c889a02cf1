package gpu

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"
)

// Device is one GPU, or one MIG instance, as seen at one reading.
type Device struct {
	UUID       string // stable key: "GPU-…" or "MIG-…"
	Index      int    // NVML index of the GPU (the parent's, for a MIG device)
	Name       string // product name, e.g. "NVIDIA H100 80GB HBM3"
	UsedBytes  uint64 // memory in use by every process on the device
	TotalBytes uint64 // capacity: total less driver-reserved memory where the driver says so
	// Unhealthy says why the device should take no new work: a critical
	// Xid within NVMLOptions.HealthQuiet, uncorrectable ECC errors, a
	// pending page retirement or row remap. "": nothing known against it.
	Unhealthy string
	// Xids counts the critical Xid events seen on the device (for a MIG
	// device, its GPU) since the source started.
	Xids uint64
	// Encoder is the hardware video encoder as read (Encoder.Known false:
	// none, or the driver does not say).
	Encoder Encoder
	// TemperatureC is the GPU's temperature in °C; 0: not read.
	TemperatureC int
	// Slowdown lists the heat and power slowdowns of its clocks in effect
	// ("hw thermal", "power brake", "hw", "sw thermal"); "": none, or not
	// read. It does not make the device Unhealthy: work on it runs, slower.
	Slowdown string
}

// Used is the fraction of capacity in use, 0 for a device without capacity.
func (d Device) Used() float64 {
	if d.TotalBytes == 0 {
		return 0
	}
	return float64(d.UsedBytes) / float64(d.TotalBytes)
}

// Source lists GPU devices with their memory. Implementations must be safe for
// use by one goroutine at a time; the resources.Monitor is that goroutine.
type Source interface {
	Devices(ctx context.Context) ([]Device, error)
}

var (
	// ErrNoGPU reports that this process cannot use NVIDIA GPUs: a build
	// without cgo or not on linux, no driver library, or no device selected.
	ErrNoGPU = errors.New("gpu: no NVIDIA GPU")
	// ErrGPUUnavailable reports that NVML lost the devices (GPU_IS_LOST,
	// UNINITIALIZED, version mismatch); the source re-Inits with backoff.
	ErrGPUUnavailable = errors.New("gpu: NVML unavailable")
	// ErrInvalidOptions is wrapped by every error about bad NVMLOptions.
	ErrInvalidOptions = errors.New("gpu: invalid options")
)

// selector decides which enumerated devices a source reports.
// The zero value selects all devices.
type selector struct {
	set     bool     // false: everything
	indexes []int    // NVML indexes
	uuids   []string // full UUIDs or unambiguous prefixes ("GPU-8f3", "MIG-…")
}

// parseSelection parses a CUDA_VISIBLE_DEVICES-style list: comma-separated
// indexes and UUIDs. An empty list selects nothing, as it does for CUDA.
func parseSelection(list string) (selector, error) {
	s := selector{set: true}
	list = strings.TrimSpace(list)
	if list == "" {
		return s, nil
	}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if n, err := strconv.Atoi(item); err == nil {
			if n < 0 {
				// CUDA stops at the first invalid index.
				break
			}
			s.indexes = append(s.indexes, n)
			continue
		}
		if !strings.HasPrefix(item, "GPU-") && !strings.HasPrefix(item, "MIG-") {
			return selector{}, &selectionError{item: item}
		}
		s.uuids = append(s.uuids, item)
	}
	return s, nil
}

type selectionError struct{ item string }

func (e *selectionError) Error() string {
	return "gpu: invalid options: Devices: " + strconv.Quote(e.item) + " is neither an index nor a GPU-/MIG- UUID"
}
func (e *selectionError) Unwrap() error { return ErrInvalidOptions }

// selectionFromEnv picks the selection a CUDA program in this process would
// see. NVIDIA_VISIBLE_DEVICES is applied by the container runtime, which
// already hides other devices from NVML and renumbers the rest, so only its
// UUIDs (not its host indexes) are used.
func selectionFromEnv(getenv func(string) (string, bool)) (selector, error) {
	if v, ok := getenv("CUDA_VISIBLE_DEVICES"); ok {
		return parseSelection(v)
	}
	if v, ok := getenv("NVIDIA_VISIBLE_DEVICES"); ok {
		switch v = strings.TrimSpace(v); v {
		case "", "all":
			return selector{}, nil
		case "none", "void":
			return selector{set: true}, nil
		}
		s, err := parseSelection(v)
		if err != nil {
			return selector{}, err
		}
		if len(s.uuids) == 0 {
			return selector{}, nil
		}
		s.indexes = nil
		return s, nil
	}
	return selector{}, nil
}

func osLookupEnv(k string) (string, bool) { return os.LookupEnv(k) }

// match reports whether a device (or a MIG device whose parent is
// parentUUID) is selected.
func (s selector) match(index int, uuid, parentUUID string) bool {
	if !s.set {
		return true
	}
	for _, i := range s.indexes {
		if i == index {
			return true
		}
	}
	for _, u := range s.uuids {
		if strings.HasPrefix(uuid, u) || (parentUUID != "" && strings.HasPrefix(parentUUID, u)) {
			return true
		}
	}
	return false
}

// NVMLOptions configures [NewNVMLSource]. The zero value is ready to use.
type NVMLOptions struct {
	// LibraryPath loads libnvidia-ml from this path. Empty: the system's
	// libnvidia-ml.so.1.
	LibraryPath string
	// Devices selects devices as CUDA_VISIBLE_DEVICES does: indexes and
	// GPU-/MIG- UUIDs (or unambiguous prefixes), comma-separated. Empty: the
	// environment decides (CUDA_VISIBLE_DEVICES, then NVIDIA_VISIBLE_DEVICES),
	// else every device.
	Devices string
	// HealthQuiet is how long a device is reported Unhealthy after its last
	// critical Xid event. Zero: 5 minutes.
	HealthQuiet time.Duration
	// ApplicationXids are Xids caused by the application, not the device
	// (a bad kernel, a page fault, a reset by the user): they do not make a
	// device unhealthy. Nil: 13, 31, 43, 45, 68 and 109.
	ApplicationXids []uint64
}

// DefaultApplicationXids are the Xids NVIDIA documents as caused by user
// applications: graphics engine exception (13), GPU memory page fault (31),
// GPU stopped processing (43), preemptive cleanup (45), video processor
// exception (68), context switch timeout (109).
var DefaultApplicationXids = []uint64{13, 31, 43, 45, 68, 109}

func (o NVMLOptions) selector() (selector, error) {
	if o.Devices != "" {
		return parseSelection(o.Devices)
	}
	return selectionFromEnv(osLookupEnv)
}
