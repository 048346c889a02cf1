package tuner

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"

	"go.temporal.io/sdk/temporal"

	"github.com/headroomhq/headroom/internal/cgroups"
	"github.com/headroomhq/headroom/routing"
)

// Out-of-memory, as an activity reports it.
//
// An activity that ran out of GPU or host memory fails with whatever its
// library says: CUDA's, PyTorch's or TensorFlow's message, a Python
// MemoryError, ENOMEM, or a child process killed by the kernel's OOM killer.
// The interceptor recognises these (exhaustion), returns
// routing.ResourceExhausted instead, which is not retried on the same queue
// and which a route escalates to its bigger class, and raises the class's
// charge for that resource: an out-of-memory shows that what the class is
// charged did not fit, which the readings alone had not shown. The charge is
// at least unconfirmedFactor × what it was at the failure, giving way over
// trustLives lives seen whole afterwards, as a declared cost does
// (class.price).

// exhausted names the resources an activity can report running out of, as
// routing.ResourceExhausted's first detail.
var exhausted = map[string]res{"gpu_memory": resGPU, "memory": resMem, "cpu": resCPU}

// gpuOOM and hostOOM are the messages CUDA, its libraries and the ML
// frameworks on top of them, and C, Python and the kernel print when an
// allocation fails; matched lower-cased, anywhere in the error's text.
var (
	gpuOOM = []string{
		"cuda out of memory",                // PyTorch, and most CUDA wrappers
		"outofmemoryerror",                  // torch.OutOfMemoryError, torch.cuda.OutOfMemoryError
		"cuda_error_out_of_memory",          // CUDA driver API
		"cudaerrormemoryallocation",         // CUDA runtime API
		"cublas_status_alloc_failed",        // cuBLAS
		"cudnn_status_alloc_failed",         // cuDNN
		"resource_exhausted: out of memory", // TensorFlow / XLA
	}
	encoderOOM = []string{
		"nv_enc_err_out_of_memory",                  // NVENC's error 10
		"openencodesessionex failed: out of memory", // ffmpeg's report of it
	}
	hostOOM = []string{
		"memoryerror",            // Python
		"cannot allocate memory", // ENOMEM
		"std::bad_alloc",         // C++
		"out of memory",          // anything else that says so (checked after the GPU and encoder lists)
	}
)

// exhaustion reports which resource err says the activity ran out of:
// "gpu_memory", "memory", "encoder" (NVENC refused a session:
// encoder.go), or "" for none. oomKilled is whether the kernel's OOM
// killer killed a process in the worker's cgroup while the activity ran: a
// child that died of SIGKILL then died of it. An error that already is
// routing.ResourceExhausted names its resource itself; an application error
// of any other type is the activity's own classification and left alone.
func exhaustion(err error, oomKilled bool) string {
	if err == nil {
		return ""
	}
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch app.Type() {
		case routing.ResourceExhaustedType:
			var name string
			if app.HasDetails() && app.Details(&name) == nil {
				return name
			}
			return "memory"
		case "":
		default:
			return "" // the activity classified its error itself
		}
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return ""
	}
	var exit *exec.ExitError
	if oomKilled && errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return "memory"
		}
	}
	if errors.Is(err, syscall.ENOMEM) {
		return "memory"
	}
	msg := strings.ToLower(err.Error())
	for _, l := range []struct {
		name string
		pats []string
	}{{"gpu_memory", gpuOOM}, {"encoder", encoderOOM}, {"memory", hostOOM}} {
		for _, p := range l.pats {
			if strings.Contains(msg, p) {
				return l.name
			}
		}
	}
	return ""
}

// exhaust raises class k's charge of r after an out-of-memory. Called with
// c.mu held.
func (c *Controller) exhaust(k *class, r res) {
	if !k.need.has(r) {
		return
	}
	k.oom[r] = max(k.oomHold(r), unconfirmedFactor*k.charge[r])
	k.oomSeen = k.seen
	k.price()
	c.resum()
}

// oomKills returns a counter of the OOM killer's kills where this worker
// runs (its memory cgroup, else the host's /proc/vmstat), or nil if neither
// tells.
func oomKills() func() (uint64, bool) {
	count := cgroups.HostOOMKills
	if cg, err := cgroups.Detect(); err == nil {
		if _, err := cg.OOMKills(); err == nil {
			count = cg.OOMKills
		}
	}
	if _, err := count(); err != nil {
		return nil
	}
	return func() (uint64, bool) {
		n, err := count()
		return n, err == nil
	}
}

// exhaust records an out-of-memory of the named resource by an activity
// bound to a slot of this supplier.
func (s *SlotSupplier) exhaust(name string) {
	r, ok := exhausted[name]
	if !ok {
		return
	}
	s.c.mu.Lock()
	s.c.exhaust(s.k, r)
	s.c.mu.Unlock()
	s.c.logger.Warn("headroom: activity ran out of "+name+"; its class is charged more", "supplier", s.k.name)
}
