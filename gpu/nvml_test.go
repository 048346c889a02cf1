//go:build linux && cgo

package gpu

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const GiB = 1 << 30

type fakeGPU struct {
	uuid, name      string
	used, total     uint64
	reserved        uint64
	notSupported    bool // memory NOT_SUPPORTED (shares system memory)
	mig             []fakeGPU
	migSlots        int
	memRet, uuidRet nvml.Return
}

// fakeLib builds a go-nvml mock of a host with the given GPUs. Calls the test
// does not expect are left unset, so the mock panics if the adapter makes them.
type fakeLib struct {
	*mock.Interface
	gpus     []fakeGPU
	hasV2    bool
	initRet  atomic.Int32
	countRet atomic.Int32
}

func newFakeLib(hasV2 bool, gpus ...fakeGPU) *fakeLib {
	f := &fakeLib{gpus: gpus, hasV2: hasV2}
	f.Interface = &mock.Interface{
		InitFunc:     func() nvml.Return { return nvml.Return(f.initRet.Load()) },
		ShutdownFunc: func() nvml.Return { return nvml.SUCCESS },
		ExtensionsFunc: func() nvml.ExtendedInterface {
			return &mock.ExtendedInterface{LookupSymbolFunc: func(s string) error {
				if s == "nvmlDeviceGetMemoryInfo_v2" && f.hasV2 {
					return nil
				}
				return errors.New("undefined symbol " + s)
			}}
		},
		DeviceGetCountFunc: func() (int, nvml.Return) {
			if r := nvml.Return(f.countRet.Load()); r != nvml.SUCCESS {
				return 0, r
			}
			return len(f.gpus), nvml.SUCCESS
		},
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			return f.device(f.gpus[i], true), nvml.SUCCESS
		},
	}
	return f
}

func (f *fakeLib) device(g fakeGPU, top bool) nvml.Device {
	d := &mock.Device{
		GetUUIDFunc: func() (string, nvml.Return) {
			if g.uuidRet != nvml.SUCCESS {
				return "", g.uuidRet
			}
			return g.uuid, nvml.SUCCESS
		},
		GetNameFunc: func() (string, nvml.Return) { return g.name, nvml.SUCCESS },
	}
	mem := func() (uint64, uint64, uint64, nvml.Return) {
		if g.notSupported {
			return 0, 0, 0, nvml.ERROR_NOT_SUPPORTED
		}
		if g.memRet != nvml.SUCCESS {
			return 0, 0, 0, g.memRet
		}
		return g.used, g.total, g.reserved, nvml.SUCCESS
	}
	if f.hasV2 {
		d.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
			used, total, reserved, ret := mem()
			return nvml.Memory_v2{Used: used, Total: total, Reserved: reserved, Free: total - reserved - used}, ret
		}
	} else {
		d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
			used, total, reserved, ret := mem()
			// v1 reports reserved memory as used.
			return nvml.Memory{Used: used + reserved, Total: total, Free: total - reserved - used}, ret
		}
	}
	if top {
		d.GetMigModeFunc = func() (int, int, nvml.Return) {
			if g.mig == nil {
				return nvml.DEVICE_MIG_DISABLE, nvml.DEVICE_MIG_DISABLE, nvml.SUCCESS
			}
			return nvml.DEVICE_MIG_ENABLE, nvml.DEVICE_MIG_ENABLE, nvml.SUCCESS
		}
		d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return g.migSlots, nvml.SUCCESS }
		d.GetMigDeviceHandleByIndexFunc = func(j int) (nvml.Device, nvml.Return) {
			if j >= len(g.mig) {
				return nil, nvml.ERROR_NOT_FOUND
			}
			return f.device(g.mig[j], false), nvml.SUCCESS
		}
	}
	return d
}

var (
	h100 = fakeGPU{uuid: "GPU-aaaa-1111", name: "NVIDIA H100 80GB HBM3", used: 10 * GiB, total: 80 * GiB, reserved: GiB / 2}
	a100 = fakeGPU{uuid: "GPU-bbbb-2222", name: "NVIDIA A100-SXM4-40GB", used: 0, total: 40 * GiB, reserved: GiB / 4}
)

func mustSelect(t *testing.T, s string) selector {
	t.Helper()
	sel, err := parseSelection(s)
	require.NoError(t, err)
	return sel
}

func TestNVMLMemoryV2ExcludesReserved(t *testing.T) {
	lib := newFakeLib(true, h100, a100)
	s, err := newNVMLSource(lib, selector{}, time.Now, NVMLOptions{}.health())
	require.NoError(t, err)
	defer s.Close()
	devs, err := s.Devices(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []Device{
		{UUID: "GPU-aaaa-1111", Index: 0, Name: "NVIDIA H100 80GB HBM3", UsedBytes: 10 * GiB, TotalBytes: 80*GiB - GiB/2},
		{UUID: "GPU-bbbb-2222", Index: 1, Name: "NVIDIA A100-SXM4-40GB", UsedBytes: 0, TotalBytes: 40*GiB - GiB/4},
	}, devs)
}

func TestNVMLOldDriverFallsBackToV1(t *testing.T) {
	// Without the _v2 symbol the adapter must never call GetMemoryInfo_v2:
	// on a real old driver that call kills the process. The mock leaves it
	// unset, so a call would panic.
	lib := newFakeLib(false, h100)
	s, err := newNVMLSource(lib, selector{}, time.Now, NVMLOptions{}.health())
	require.NoError(t, err)
	defer s.Close()
	devs, err := s.Devices(context.Background())
	require.NoError(t, err)
	require.Len(t, devs, 1)
	assert.Equal(t, uint64(10*GiB+GiB/2), devs[0].UsedBytes, "v1 Used includes reserved memory")
	assert.Equal(t, uint64(80*GiB), devs[0].TotalBytes)
}

func TestNVMLFailedInitMakesNoOtherCall(t *testing.T) {
	for _, ret := range []nvml.Return{nvml.ERROR_LIBRARY_NOT_FOUND, nvml.ERROR_DRIVER_NOT_LOADED, nvml.ERROR_NO_PERMISSION} {
		lib := &mock.Interface{InitFunc: func() nvml.Return { return ret }} // anything else panics
		s, err := newNVMLSource(lib, selector{}, time.Now, NVMLOptions{}.health())
		assert.Nil(t, s)
		assert.ErrorIs(t, err, ErrNoGPU)
		assert.Len(t, lib.InitCalls(), 1)
	}
}

func TestNVMLSelection(t *testing.T) {
	tests := []struct {
		sel   string
		uuids []string
	}{
		{"1", []string{"GPU-bbbb-2222"}},
		{"GPU-aaaa", []string{"GPU-aaaa-1111"}},
		{"1,0", []string{"GPU-aaaa-1111", "GPU-bbbb-2222"}},
		{"0,-1,1", []string{"GPU-aaaa-1111"}}, // CUDA stops at the first invalid index
	}
	for _, tt := range tests {
		lib := newFakeLib(true, h100, a100)
		s, err := newNVMLSource(lib, mustSelect(t, tt.sel), time.Now, NVMLOptions{}.health())
		require.NoError(t, err, tt.sel)
		devs, err := s.Devices(context.Background())
		require.NoError(t, err)
		var got []string
		for _, d := range devs {
			got = append(got, d.UUID)
		}
		assert.Equal(t, tt.uuids, got, tt.sel)
		require.NoError(t, s.Close())
		assert.Len(t, lib.ShutdownCalls(), 1)
	}
	_, err := newNVMLSource(newFakeLib(true, h100), mustSelect(t, ""), time.Now, NVMLOptions{}.health())
	assert.ErrorIs(t, err, ErrNoGPU, "an empty selection hides every device")
}

func TestNVMLMIGDevices(t *testing.T) {
	gpu := fakeGPU{uuid: "GPU-cccc", name: "NVIDIA H100", migSlots: 7, mig: []fakeGPU{
		{uuid: "MIG-1111", name: "NVIDIA H100 MIG 3g.40gb", used: GiB, total: 40 * GiB},
		{uuid: "MIG-2222", name: "NVIDIA H100 MIG 3g.40gb", used: 2 * GiB, total: 40 * GiB},
	}}
	lib := newFakeLib(true, gpu, fakeGPU{uuid: "GPU-shared", name: "Grace", notSupported: true})
	s, err := newNVMLSource(lib, selector{}, time.Now, NVMLOptions{}.health())
	require.NoError(t, err)
	defer s.Close()
	devs, err := s.Devices(context.Background())
	require.NoError(t, err)
	require.Len(t, devs, 2, "MIG instances replace their parent; a device sharing system memory is skipped")
	assert.Equal(t, "MIG-1111", devs[0].UUID)
	assert.Equal(t, 0, devs[1].Index)
	assert.Equal(t, uint64(2*GiB), devs[1].UsedBytes)

	s2, err := newNVMLSource(newFakeLib(true, gpu), mustSelect(t, "MIG-2222"), time.Now, NVMLOptions{}.health())
	require.NoError(t, err)
	defer s2.Close()
	devs, err = s2.Devices(context.Background())
	require.NoError(t, err)
	require.Len(t, devs, 1)
	assert.Equal(t, "MIG-2222", devs[0].UUID)
}

func TestNVMLLostGPUReinitsWithBackoff(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	lib := newFakeLib(true, h100)
	s, err := newNVMLSource(lib, selector{}, clock, NVMLOptions{}.health())
	require.NoError(t, err)
	defer s.Close()

	lib.countRet.Store(int32(nvml.ERROR_GPU_IS_LOST))
	_, err = s.Devices(context.Background())
	require.ErrorIs(t, err, ErrGPUUnavailable)
	assert.Len(t, lib.ShutdownCalls(), 1, "a lost GPU shuts NVML down before re-Init")

	// The device comes back, but no re-Init happens before the backoff ends.
	lib.countRet.Store(int32(nvml.SUCCESS))
	now = now.Add(500 * time.Millisecond)
	_, err = s.Devices(context.Background())
	require.ErrorIs(t, err, ErrGPUUnavailable)
	assert.Len(t, lib.InitCalls(), 1)

	// Re-Init fails: backoff doubles, and nothing but Init is called meanwhile.
	lib.initRet.Store(int32(nvml.ERROR_DRIVER_NOT_LOADED))
	now = now.Add(600 * time.Millisecond)
	_, err = s.Devices(context.Background())
	require.ErrorIs(t, err, ErrGPUUnavailable)
	assert.Len(t, lib.InitCalls(), 2)
	assert.Len(t, lib.DeviceGetCountCalls(), 2, "no device call after a failed re-Init")
	now = now.Add(1500 * time.Millisecond) // < 2 s backoff
	_, err = s.Devices(context.Background())
	require.ErrorIs(t, err, ErrGPUUnavailable)
	assert.Len(t, lib.InitCalls(), 2)

	lib.initRet.Store(int32(nvml.SUCCESS))
	now = now.Add(time.Second)
	devs, err := s.Devices(context.Background())
	require.NoError(t, err)
	assert.Len(t, devs, 1)
	assert.Len(t, lib.InitCalls(), 3)

	require.NoError(t, s.Close())
	assert.Len(t, lib.ShutdownCalls(), 2)
	_, err = s.Devices(context.Background())
	assert.ErrorIs(t, err, ErrGPUUnavailable)
}

func TestNVMLNonFatalErrorKeepsNVML(t *testing.T) {
	bad := h100
	bad.memRet = nvml.ERROR_UNKNOWN
	lib := newFakeLib(true, h100)
	s, err := newNVMLSource(lib, selector{}, time.Now, NVMLOptions{}.health())
	require.NoError(t, err)
	defer s.Close()
	lib.gpus = []fakeGPU{bad}
	_, err = s.Devices(context.Background())
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrGPUUnavailable)
	assert.Empty(t, lib.ShutdownCalls())
}
