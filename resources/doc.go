// Package resources measures the CPU and memory this process may use, the way
// a container runtime enforces them, and publishes the readings as snapshots.
//
// A [Source] reads [Usage]: CPU as a fraction of the cgroup quota (else of the
// host), memory as working set (usage less inactive page cache) over the
// smallest limit up the cgroup hierarchy (else host memory). [NewSystemSource]
// detects cgroup v1, v2 and hybrid hosts from /proc/self/cgroup and
// /proc/self/mountinfo.
//
// A [Monitor] samples a Source, and optionally a gpu.Source, on its own
// goroutine and publishes an immutable [Snapshot]. Readers get the latest
// snapshot with one atomic load: no lock, no syscall, no allocation. This is
// what keeps a slot supplier's hot path as cheap as a fixed-size one.
//
// [NewSysInfoProvider] adapts a Monitor to the SDK's worker.SysInfoProvider,
// so the SDK's own resource tuner and worker heartbeats see the same
// container-correct readings.
package resources
