package resources

import (
	"time"

	"go.temporal.io/sdk/worker"
)

// SysInfoProvider adapts a Monitor to worker.SysInfoProvider. Use a pointer:
// the SDK compares providers by identity.
type SysInfoProvider struct{ m *Monitor }

var _ worker.SysInfoProvider = (*SysInfoProvider)(nil)

// NewSysInfoProvider returns a provider reading m's snapshots.
func NewSysInfoProvider(m *Monitor) *SysInfoProvider { return &SysInfoProvider{m: m} }

// MemoryUsage returns the working-set fraction of the memory limit. It fails
// when the reading is stale, so the SDK's tuner does not admit on old data.
func (p *SysInfoProvider) MemoryUsage(*worker.SysInfoContext) (float64, error) {
	s := p.m.Snapshot()
	if err := s.UsageOK(time.Now()); err != nil {
		return 0, err
	}
	return s.Usage.Memory, nil
}

// CpuUsage returns the CPU fraction of the quota (or host). Its name follows
// the SDK interface.
func (p *SysInfoProvider) CpuUsage(*worker.SysInfoContext) (float64, error) {
	s := p.m.Snapshot()
	if err := s.UsageOK(time.Now()); err != nil {
		return 0, err
	}
	return s.Usage.CPU, nil
}
