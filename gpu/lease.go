package gpu

import (
	"context"
	"strings"
)

// Lease is the GPU an activity's slot was budgeted on. Admission charged the
// activity's footprint to this device: work the activity puts on any other
// device is work the budget does not know about. An activity gets its lease
// with [LeaseFromContext]; the tuner's interceptor puts it there.
type Lease struct {
	UUID  string // "GPU-…", or "MIG-…" for a MIG device
	Index int    // NVML index of the GPU (the parent's, for a MIG device)
	Name  string // product name as NVML reports it
}

// MIG reports whether the lease is a MIG device rather than a whole GPU.
func (l Lease) MIG() bool { return strings.HasPrefix(l.UUID, "MIG-") }

// Env returns the environment a subprocess needs to see this device alone
// (and as its device 0): CUDA_VISIBLE_DEVICES set to the UUID, which CUDA
// accepts for GPUs and MIG devices alike and which, unlike an index, does
// not depend on CUDA_DEVICE_ORDER. Append it to os.Environ() for exec.Cmd.Env.
func (l Lease) Env() []string {
	return []string{"CUDA_VISIBLE_DEVICES=" + l.UUID}
}

type leaseKey struct{}

// WithLease returns a copy of ctx that carries l. The tuner's interceptor
// calls it; tests of activity code can too.
func WithLease(ctx context.Context, l Lease) context.Context {
	return context.WithValue(ctx, leaseKey{}, l)
}

// LeaseFromContext returns the GPU the running activity was budgeted on.
// ok is false for activities of classes that consume no GPU memory and for
// workers without the tuner's interceptor.
func LeaseFromContext(ctx context.Context) (l Lease, ok bool) {
	l, ok = ctx.Value(leaseKey{}).(Lease)
	return l, ok
}
