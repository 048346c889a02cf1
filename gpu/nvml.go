//go:build linux && cgo

package gpu

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

const (
	minReinitBackoff = time.Second
	maxReinitBackoff = time.Minute
)

// NVMLSource reads device memory through NVML. It is safe for concurrent use,
// but calls are serialized: NVML queries take a driver lock anyway.
type NVMLSource struct {
	mu      sync.Mutex
	lib     nvml.Interface
	sel     selector
	now     func() time.Time
	inited  bool // NVML Init succeeded and Shutdown has not been called
	hasV2   bool // nvmlDeviceGetMemoryInfo_v2 is exported by the loaded library
	lost    error
	backoff time.Duration
	retryAt time.Time
	closed  bool
	health  health
	has     map[string]bool // encoder and thermal calls the library exports (at Init)
}

// NewNVMLSource loads NVML and checks that at least one selected device can be
// read. It returns an error wrapping [ErrNoGPU] when the library is missing,
// the driver is not loaded, or no device is selected.
func NewNVMLSource(opts NVMLOptions) (*NVMLSource, error) {
	sel, err := opts.selector()
	if err != nil {
		return nil, err
	}
	var libOpts []nvml.LibraryOption
	if opts.LibraryPath != "" {
		libOpts = append(libOpts, nvml.WithLibraryPath(opts.LibraryPath))
	}
	return newNVMLSource(nvml.New(libOpts...), sel, time.Now, opts.health())
}

func newNVMLSource(lib nvml.Interface, sel selector, now func() time.Time, h health) (*NVMLSource, error) {
	s := &NVMLSource{lib: lib, sel: sel, now: now, health: h}
	if err := s.init(); err != nil {
		return nil, err
	}
	devs, err := s.read()
	if err != nil {
		s.Close()
		return nil, err
	}
	if len(devs) == 0 {
		s.Close()
		return nil, fmt.Errorf("%w: no device selected", ErrNoGPU)
	}
	return s, nil
}

// init calls nvml Init; on failure it leaves inited false so that nothing
// else, Shutdown included, is ever called on this library.
func (s *NVMLSource) init() error {
	if ret := s.lib.Init(); ret != nvml.SUCCESS {
		// ErrorString is itself an NVML call; do not make it after a failed Init.
		return fmt.Errorf("%w: nvmlInit returned %d (%s)", ErrNoGPU, int32(ret), initReason(ret))
	}
	s.inited = true
	s.hasV2 = s.lib.Extensions().LookupSymbol("nvmlDeviceGetMemoryInfo_v2") == nil
	s.health.start(s.lib)
	s.has = exported(s.lib, encoderSymbols, thermalSymbols)
	return nil
}

// exported reports which of the symbols the loaded library exports: a call
// is made only to one that is (an older driver lacks the newer ones, and
// calling a missing symbol kills the process).
func exported(lib nvml.Interface, lists ...[]string) map[string]bool {
	has := map[string]bool{}
	for _, l := range lists {
		for _, sym := range l {
			has[sym] = lib.Extensions().LookupSymbol(sym) == nil
		}
	}
	return has
}

func initReason(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "libnvidia-ml not found"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "driver not loaded"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission"
	case nvml.ERROR_FUNCTION_NOT_FOUND:
		return "library too old"
	default:
		return "init failed"
	}
}

// Devices returns the selected devices' memory. After NVML lost the GPUs it
// returns an error wrapping [ErrGPUUnavailable] and retries Init no more often
// than its backoff allows (1 s doubling to 1 min).
func (s *NVMLSource) Devices(ctx context.Context) ([]Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%w: source closed", ErrGPUUnavailable)
	}
	if s.lost != nil {
		if s.now().Before(s.retryAt) {
			return nil, s.lost
		}
		if err := s.init(); err != nil {
			s.scheduleRetry(fmt.Errorf("%w: re-init: %v", ErrGPUUnavailable, err))
			return nil, s.lost
		}
	}
	devs, err := s.read()
	if err != nil {
		return nil, err
	}
	s.lost, s.backoff = nil, 0
	return devs, nil
}

func (s *NVMLSource) scheduleRetry(err error) {
	s.lost = err
	if s.backoff == 0 {
		s.backoff = minReinitBackoff
	} else {
		s.backoff = min(2*s.backoff, maxReinitBackoff)
	}
	s.retryAt = s.now().Add(s.backoff)
}

// fatal reports whether ret means NVML must be re-initialized.
func fatal(ret nvml.Return) bool {
	switch ret {
	case nvml.ERROR_GPU_IS_LOST, nvml.ERROR_UNINITIALIZED,
		nvml.ERROR_LIB_RM_VERSION_MISMATCH, nvml.ERROR_ARGUMENT_VERSION_MISMATCH,
		nvml.ERROR_DRIVER_NOT_LOADED:
		return true
	}
	return false
}

// check turns an NVML return into an error; a fatal one shuts NVML down and
// schedules a re-Init.
func (s *NVMLSource) check(ret nvml.Return, what string) error {
	if ret == nvml.SUCCESS {
		return nil
	}
	if fatal(ret) {
		if s.inited {
			s.health.stop()
			s.lib.Shutdown()
			s.inited = false
		}
		s.scheduleRetry(fmt.Errorf("%w: %s returned %d", ErrGPUUnavailable, what, int32(ret)))
		return s.lost
	}
	return fmt.Errorf("gpu: %s returned %d", what, int32(ret))
}

func (s *NVMLSource) read() ([]Device, error) {
	n, ret := s.lib.DeviceGetCount()
	if err := s.check(ret, "nvmlDeviceGetCount"); err != nil {
		return nil, err
	}
	devs := make([]Device, 0, n)
	now := s.now()
	s.health.drain(now)
	for i := 0; i < n; i++ {
		h, ret := s.lib.DeviceGetHandleByIndex(i)
		if err := s.check(ret, "nvmlDeviceGetHandleByIndex"); err != nil {
			return nil, err
		}
		uuid, ret := h.GetUUID()
		if err := s.check(ret, "nvmlDeviceGetUUID"); err != nil {
			return nil, err
		}
		name, ret := h.GetName()
		if err := s.check(ret, "nvmlDeviceGetName"); err != nil {
			return nil, err
		}
		migs, isMIG, err := s.migDevices(h, i, uuid, name)
		if err != nil {
			return nil, err
		}
		if isMIG {
			// A MIG device is as healthy, and as hot, as its GPU.
			why := s.health.of(h, uuid, now)
			temp, slow := thermal(h, s.has)
			for j := range migs {
				migs[j].Unhealthy, migs[j].TemperatureC, migs[j].Slowdown = why, temp, slow
				migs[j].Xids = s.health.count[uuid]
			}
			devs = append(devs, migs...)
			continue
		}
		if !s.sel.match(i, uuid, "") {
			continue
		}
		d := Device{UUID: uuid, Index: i, Name: name, Unhealthy: s.health.of(h, uuid, now), Encoder: encoder(h, s.has), Xids: s.health.count[uuid]}
		d.TemperatureC, d.Slowdown = thermal(h, s.has)
		ok, err := s.memory(h, &d)
		if err != nil {
			return nil, err
		}
		if ok {
			devs = append(devs, d)
		}
	}
	return devs, nil
}

// migDevices lists the MIG devices of a GPU with MIG enabled. isMIG is false
// for GPUs without MIG support or with MIG disabled.
func (s *NVMLSource) migDevices(h nvml.Device, index int, parentUUID, name string) ([]Device, bool, error) {
	current, _, ret := h.GetMigMode()
	if ret == nvml.ERROR_NOT_SUPPORTED || (ret == nvml.SUCCESS && current != nvml.DEVICE_MIG_ENABLE) {
		return nil, false, nil
	}
	if err := s.check(ret, "nvmlDeviceGetMigMode"); err != nil {
		return nil, false, err
	}
	max, ret := h.GetMaxMigDeviceCount()
	if err := s.check(ret, "nvmlDeviceGetMaxMigDeviceCount"); err != nil {
		return nil, false, err
	}
	var out []Device
	for j := 0; j < max; j++ {
		mh, ret := h.GetMigDeviceHandleByIndex(j)
		if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue // empty MIG slot
		}
		if err := s.check(ret, "nvmlDeviceGetMigDeviceHandleByIndex"); err != nil {
			return nil, true, err
		}
		uuid, ret := mh.GetUUID()
		if err := s.check(ret, "nvmlDeviceGetUUID"); err != nil {
			return nil, true, err
		}
		if !s.sel.match(index, uuid, parentUUID) {
			continue
		}
		d := Device{UUID: uuid, Index: index, Name: name + " MIG"}
		if mname, ret := mh.GetName(); ret == nvml.SUCCESS {
			d.Name = mname
		}
		ok, err := s.memory(mh, &d)
		if err != nil {
			return nil, true, err
		}
		if ok {
			out = append(out, d)
		}
	}
	return out, true, nil
}

// memory fills d's memory. ok is false for devices without dedicated memory
// (NOT_SUPPORTED: the GPU shares system memory), which are skipped.
func (s *NVMLSource) memory(h nvml.Device, d *Device) (bool, error) {
	if s.hasV2 {
		m, ret := h.GetMemoryInfo_v2()
		if ret == nvml.ERROR_NOT_SUPPORTED {
			return false, nil
		}
		if err := s.check(ret, "nvmlDeviceGetMemoryInfo_v2"); err != nil {
			return false, err
		}
		d.UsedBytes = m.Used
		d.TotalBytes = m.Total
		if m.Reserved < m.Total {
			d.TotalBytes = m.Total - m.Reserved
		}
		return true, nil
	}
	m, ret := h.GetMemoryInfo()
	if ret == nvml.ERROR_NOT_SUPPORTED {
		return false, nil
	}
	if err := s.check(ret, "nvmlDeviceGetMemoryInfo"); err != nil {
		return false, err
	}
	d.UsedBytes, d.TotalBytes = m.Used, m.Total // v1: Used includes reserved
	return true, nil
}

// Close shuts NVML down if this source initialized it. It is safe to call
// more than once.
func (s *NVMLSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if !s.inited {
		return nil
	}
	s.inited = false
	s.health.stop()
	if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("gpu: nvmlShutdown returned %d", int32(ret))
	}
	return nil
}
