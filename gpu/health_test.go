//go:build linux && cgo

package gpu

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sickLib is a fakeLib whose library exports the health calls: an event
// queue the test fills, and per-device ECC, row-remap and retirement state.
type sickLib struct {
	*fakeLib
	mu      sync.Mutex
	queue   []nvml.EventData
	handles map[string]nvml.Device
	state   map[string]*sickness
	freed   int
}

type sickness struct {
	ecc                    uint64
	remapPending, remapBad bool
	pagesPending           bool
}

func newSickLib(gpus ...fakeGPU) *sickLib {
	l := &sickLib{fakeLib: newFakeLib(true, gpus...), handles: map[string]nvml.Device{}, state: map[string]*sickness{}}
	l.ExtensionsFunc = func() nvml.ExtendedInterface {
		return &mock.ExtendedInterface{LookupSymbolFunc: func(s string) error {
			if s == "nvmlDeviceGetMemoryInfo_v2" || slices.Contains(healthSymbols, s) {
				return nil
			}
			return errors.New("undefined symbol " + s)
		}}
	}
	set := &mock.EventSet{
		WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if len(l.queue) == 0 {
				return nvml.EventData{}, nvml.ERROR_TIMEOUT
			}
			e := l.queue[0]
			l.queue = l.queue[1:]
			return e, nvml.SUCCESS
		},
		FreeFunc: func() nvml.Return { l.freed++; return nvml.SUCCESS },
	}
	l.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return set, nvml.SUCCESS }
	l.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		g := l.gpus[i]
		if d, ok := l.handles[g.uuid]; ok {
			return d, nvml.SUCCESS
		}
		d := l.device(g, true).(*mock.Device)
		st := &sickness{}
		l.state[g.uuid] = st
		d.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
		d.GetTotalEccErrorsFunc = func(nvml.MemoryErrorType, nvml.EccCounterType) (uint64, nvml.Return) {
			l.mu.Lock()
			defer l.mu.Unlock()
			return st.ecc, nvml.SUCCESS
		}
		d.GetRemappedRowsFunc = func() (int, int, bool, bool, nvml.Return) {
			l.mu.Lock()
			defer l.mu.Unlock()
			return 0, 2, st.remapPending, st.remapBad, nvml.SUCCESS
		}
		d.GetRetiredPagesPendingStatusFunc = func() (nvml.EnableState, nvml.Return) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if st.pagesPending {
				return nvml.FEATURE_ENABLED, nvml.SUCCESS
			}
			return nvml.FEATURE_DISABLED, nvml.SUCCESS
		}
		l.handles[g.uuid] = d
		return d, nvml.SUCCESS
	}
	return l
}

func (l *sickLib) xid(uuid string, xid uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queue = append(l.queue, nvml.EventData{Device: l.handles[uuid], EventType: nvml.EventTypeXidCriticalError, EventData: xid})
}

func (l *sickLib) set(uuid string, f func(*sickness)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l.state[uuid])
}

func unhealthy(t *testing.T, s *NVMLSource) map[string]string {
	t.Helper()
	devs, err := s.Devices(context.Background())
	require.NoError(t, err)
	out := map[string]string{}
	for _, d := range devs {
		out[d.UUID] = d.Unhealthy
	}
	return out
}

func TestHealth(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	lib := newSickLib(h100, a100)
	s, err := newNVMLSource(lib, selector{}, clock, NVMLOptions{HealthQuiet: time.Minute}.health())
	require.NoError(t, err)
	defer s.Close()
	h, a := h100.uuid, a100.uuid
	assert.Equal(t, map[string]string{h: "", a: ""}, unhealthy(t, s))

	lib.xid(h, 79) // fallen off the bus
	got := unhealthy(t, s)
	assert.Contains(t, got[h], "Xid 79", "a critical Xid gates its device")
	assert.Empty(t, got[a], "and only that device")
	now = now.Add(59 * time.Second)
	assert.Contains(t, unhealthy(t, s)[h], "Xid 79", "within the quiet period")
	now = now.Add(2 * time.Second)
	assert.Empty(t, unhealthy(t, s)[h], "back after a quiet period")

	lib.xid(a, 13) // the application's fault
	lib.xid(a, 43)
	assert.Equal(t, map[string]string{h: "", a: ""}, unhealthy(t, s), "application Xids do not gate")
	devs, err := s.Devices(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []uint64{1, 0}, []uint64{devs[0].Xids, devs[1].Xids}, "critical Xids are counted (hw.errors), application ones not")

	lib.set(a, func(s *sickness) { s.remapPending = true })
	assert.Contains(t, unhealthy(t, s)[a], "row remap pending")
	lib.set(a, func(s *sickness) { s.remapPending, s.remapBad = false, true })
	assert.Contains(t, unhealthy(t, s)[a], "row remapping failed")
	lib.set(a, func(s *sickness) { s.remapBad, s.pagesPending = false, true })
	assert.Contains(t, unhealthy(t, s)[a], "page retirement pending")
	lib.set(a, func(s *sickness) { s.pagesPending, s.ecc = false, 3 })
	assert.Contains(t, unhealthy(t, s)[a], "3 uncorrectable ECC errors")
	lib.set(a, func(s *sickness) { s.ecc = 0 })
	assert.Empty(t, unhealthy(t, s)[a])

	s.Close()
	assert.Equal(t, 1, lib.freed, "the event set is freed before Shutdown")
}

// A library without the event and health symbols (an old driver; the plain
// fake panics on any call it does not expect) reads memory as before and
// reports every device healthy.
func TestHealthWithoutSymbols(t *testing.T) {
	s, err := newNVMLSource(newFakeLib(true, h100), selector{}, time.Now, NVMLOptions{}.health())
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, map[string]string{h100.uuid: ""}, unhealthy(t, s))
}
