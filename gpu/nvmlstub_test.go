//go:build linux && cgo

package gpu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// buildStub compiles testdata/nvmlstub.c into dir/libnvidia-ml.so.1.
func buildStub(t *testing.T, withV2 bool, defines ...string) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		cc, err = exec.LookPath("cc")
	}
	if err != nil {
		t.Skip("no C compiler to build the NVML stub")
	}
	lib := filepath.Join(t.TempDir(), "libnvidia-ml.so.1")
	args := []string{"-shared", "-fPIC", "-o", lib, "testdata/nvmlstub.c"}
	if withV2 {
		args = append([]string{"-DWITH_V2"}, args...)
	}
	args = append(defines, args...)
	out, err := exec.Command(cc, args...).CombinedOutput()
	require.NoError(t, err, "build stub: %s", out)
	return lib
}

type stubResult struct {
	Devices []Device
	Err     string
	NoGPU   bool
	Lost    bool // a read failed with ErrGPUUnavailable before the one reported
}

// runStub runs one NVML session against the stub in a child process (go-nvml
// binds symbols process-wide, so each library must get a fresh process) and
// returns what the source reported and every NVML call the stub saw.
func runStub(t *testing.T, lib string, env ...string) (stubResult, []string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "calls.log")
	cmd := exec.Command(os.Args[0], "-test.run=^TestStubChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), append(env, "HEADROOM_NVML_STUB="+lib, "NVML_STUB_LOG="+logPath)...)
	out, err := cmd.Output()
	require.NoError(t, err, "child process died: a call after a failed Init, or a missing symbol, kills it")
	var res stubResult
	line := out
	if i := strings.Index(string(out), "RESULT "); i >= 0 {
		line = []byte(strings.SplitN(string(out[i+len("RESULT "):]), "\n", 2)[0])
	}
	require.NoError(t, json.Unmarshal(line, &res), "child output: %s", out)
	calls, _ := os.ReadFile(logPath)
	return res, strings.Fields(string(calls))
}

// TestStubChild is the child half of runStub; it does nothing in a normal run.
func TestStubChild(t *testing.T) {
	lib := os.Getenv("HEADROOM_NVML_STUB")
	if lib == "" {
		t.Skip("helper process only")
	}
	var res stubResult
	s, err := NewNVMLSource(NVMLOptions{LibraryPath: lib, Devices: os.Getenv("HEADROOM_NVML_DEVICES")})
	if err == nil {
		res.Devices, err = s.Devices(context.Background())
		if errors.Is(err, ErrGPUUnavailable) && os.Getenv("HEADROOM_NVML_RETRY") != "" {
			res.Lost = true
			time.Sleep(minReinitBackoff + 100*time.Millisecond)
			res.Devices, err = s.Devices(context.Background())
		}
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		res.Err = err.Error()
		res.NoGPU = errorsIsNoGPU(err)
	}
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
}

func TestStubDriverWithV2(t *testing.T) {
	res, calls := runStub(t, buildStub(t, true))
	require.Empty(t, res.Err)
	assert.Equal(t, []Device{
		{UUID: "GPU-stub-0", Index: 0, Name: "Stub GPU 0", UsedBytes: 1 << 30, TotalBytes: 80<<30 - 1<<29},
		{UUID: "GPU-stub-1", Index: 1, Name: "Stub GPU 1", UsedBytes: 2 << 30, TotalBytes: 80<<30 - 1<<29},
	}, res.Devices)
	assert.Contains(t, calls, "nvmlDeviceGetMemoryInfo_v2")
	assert.NotContains(t, calls, "nvmlDeviceGetMemoryInfo")
	assert.Equal(t, "nvmlShutdown", calls[len(calls)-1])
}

func TestStubOldDriverWithoutV2(t *testing.T) {
	res, calls := runStub(t, buildStub(t, false), "HEADROOM_NVML_DEVICES=1")
	require.Empty(t, res.Err)
	require.Len(t, res.Devices, 1)
	assert.Equal(t, uint64(2<<30+1<<29), res.Devices[0].UsedBytes, "v1 counts reserved memory as used")
	assert.Equal(t, uint64(80<<30), res.Devices[0].TotalBytes)
	assert.Contains(t, calls, "nvmlDeviceGetMemoryInfo")
	assert.NotContains(t, calls, "nvmlDeviceGetMemoryInfo_v2")
}

func TestStubDriverNotLoaded(t *testing.T) {
	res, calls := runStub(t, buildStub(t, true), "NVML_STUB_INIT_RET=9") // NVML_ERROR_DRIVER_NOT_LOADED
	assert.True(t, res.NoGPU, res.Err)
	assert.Contains(t, res.Err, "driver not loaded")
	assert.Equal(t, []string{"nvmlInit_v2"}, calls, "no NVML call, Shutdown included, after a failed Init")
}

func TestStubLibraryMissing(t *testing.T) {
	res, calls := runStub(t, filepath.Join(t.TempDir(), "libnvidia-ml.so.1"))
	assert.True(t, res.NoGPU, res.Err)
	assert.Contains(t, res.Err, "not found")
	assert.Empty(t, calls)
}

// Health through the real cgo path: a driver that exports the event and
// health calls. A critical Xid gates its device only, an application Xid
// does not, a pending row remap gates, and the event set is freed before
// Shutdown. (The stub without -DWITH_HEALTH is a driver without them: the
// tests above show it reads memory and makes none of these calls.)
func TestStubHealth(t *testing.T) {
	lib := buildStub(t, true, "-DWITH_HEALTH")
	unhealthy := func(env ...string) ([]string, []string) {
		res, calls := runStub(t, lib, env...)
		require.Empty(t, res.Err)
		require.Len(t, res.Devices, 2)
		return []string{res.Devices[0].Unhealthy, res.Devices[1].Unhealthy}, calls
	}
	got, calls := unhealthy("NVML_STUB_XID=79")
	assert.Empty(t, got[0])
	assert.Contains(t, got[1], "Xid 79", "a critical Xid gates the device it names")
	assert.Contains(t, calls, "nvmlDeviceRegisterEvents")
	i := slices.Index(calls, "nvmlEventSetFree")
	assert.True(t, i >= 0 && i < slices.Index(calls, "nvmlShutdown"), "the event set is freed before Shutdown: %v", calls)

	got, _ = unhealthy("NVML_STUB_XID=13")
	assert.Equal(t, []string{"", ""}, got, "an application Xid does not gate")

	got, _ = unhealthy("NVML_STUB_REMAP_PENDING=0")
	assert.Contains(t, got[0], "row remap pending")
	assert.Empty(t, got[1])
}

// A GPU lost through the real cgo path: the read fails with
// ErrGPUUnavailable, NVML is shut down, and after the backoff a re-Init
// reads both devices again (the tuner gates every device meanwhile:
// TestLostGPUsTakeNoSlots).
func TestStubLostGPUReinits(t *testing.T) {
	res, calls := runStub(t, buildStub(t, true), "NVML_STUB_LOST_AT=2", "HEADROOM_NVML_RETRY=1")
	require.Empty(t, res.Err)
	assert.True(t, res.Lost, "the lost read reports ErrGPUUnavailable")
	assert.Len(t, res.Devices, 2, "read again after the re-Init")
	shut := slices.Index(calls, "nvmlShutdown")
	require.GreaterOrEqual(t, shut, 0)
	assert.Contains(t, calls[shut:], "nvmlInit_v2", "Init again after the Shutdown: %v", calls)
}

// A driver without the health, encoder and thermal calls: memory is read,
// none of them is called, and the encoder is reported unknown.
func TestStubWithoutHealthMakesNoHealthCalls(t *testing.T) {
	res, calls := runStub(t, buildStub(t, true))
	for _, c := range calls {
		assert.NotContains(t, []string{"nvmlEventSetCreate", "nvmlDeviceGetRemappedRows", "nvmlDeviceGetTotalEccErrors",
			"nvmlDeviceGetEncoderStats", "nvmlDeviceGetTemperature"}, c)
	}
	require.Len(t, res.Devices, 2)
	assert.False(t, res.Devices[0].Encoder.Known, "no encoder call: encoders unknown")
}

// Encoders and heat through the real cgo path: sessions, engine load and
// capacity per codec (AV1 not supported on this board), temperature, and a
// hardware thermal slowdown named without gating the device.
func TestStubEncoder(t *testing.T) {
	res, calls := runStub(t, buildStub(t, true, "-DWITH_ENCODER"), "NVML_STUB_SESSIONS=2")
	require.Empty(t, res.Err)
	require.Len(t, res.Devices, 2)
	d0, d1 := res.Devices[0], res.Devices[1]
	assert.Equal(t, Encoder{Known: true, Sessions: 2, Utilization: 25, Capacity: [numCodecs]int{90, 80, -1}}, d0.Encoder)
	assert.Equal(t, 3, d1.Encoder.Sessions)
	assert.Equal(t, 41, d0.TemperatureC)
	assert.Empty(t, d0.Slowdown, "idle and the software power cap are not slowdowns")
	assert.Equal(t, 84, d1.TemperatureC)
	assert.Equal(t, "hw thermal", d1.Slowdown)
	assert.Empty(t, d1.Unhealthy, "a slowdown is not a fault")
	assert.Contains(t, calls, "nvmlDeviceGetEncoderCapacity")
	assert.NotContains(t, calls, "nvmlDeviceGetCurrentClocksThrottleReasons", "the newer name is preferred")
}
