//go:build linux && cgo

package gpu

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A driver from before 535 names clock event reasons throttle reasons; a
// board without NVENC fails the encoder call, and then no other encoder
// call is made (the mock panics on calls it does not expect).
func TestEncoderAndThermalOnOlderDrivers(t *testing.T) {
	f := newFakeLib(true, h100, a100)
	exported := []string{"nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetEncoderStats", "nvmlDeviceGetEncoderUtilization",
		"nvmlDeviceGetTemperature", "nvmlDeviceGetCurrentClocksThrottleReasons"}
	f.ExtensionsFunc = func() nvml.ExtendedInterface {
		return &mock.ExtendedInterface{LookupSymbolFunc: func(s string) error {
			if slices.Contains(exported, s) {
				return nil
			}
			return errors.New("undefined symbol " + s)
		}}
	}
	f.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		d := f.device(f.gpus[i], true).(*mock.Device)
		d.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return uint32(60 + i), nvml.SUCCESS }
		d.GetCurrentClocksThrottleReasonsFunc = func() (uint64, nvml.Return) {
			return nvml.ClocksThrottleReasonHwPowerBrakeSlowdown | nvml.ClocksEventReasonSwThermalSlowdown, nvml.SUCCESS
		}
		if i == 0 {
			d.GetEncoderStatsFunc = func() (int, uint32, uint32, nvml.Return) { return 0, 0, 0, nvml.ERROR_NOT_SUPPORTED }
			return d, nvml.SUCCESS
		}
		d.GetEncoderStatsFunc = func() (int, uint32, uint32, nvml.Return) { return 4, 30, 900, nvml.SUCCESS }
		d.GetEncoderUtilizationFunc = func() (uint32, uint32, nvml.Return) { return 55, 167000, nvml.SUCCESS }
		return d, nvml.SUCCESS
	}
	s, err := newNVMLSource(f, selector{}, time.Now, NVMLOptions{}.health())
	require.NoError(t, err)
	defer s.Close()
	devs, err := s.Devices(context.Background())
	require.NoError(t, err)
	require.Len(t, devs, 2)
	assert.Equal(t, Encoder{}, devs[0].Encoder, "no NVENC: unknown, nothing else asked")
	assert.Equal(t, Encoder{Known: true, Sessions: 4, Utilization: 55, Capacity: [numCodecs]int{-1, -1, -1}}, devs[1].Encoder,
		"capacity not exported: reported unknown")
	assert.Equal(t, 61, devs[1].TemperatureC)
	assert.Equal(t, "power brake, sw thermal", devs[1].Slowdown)
}
