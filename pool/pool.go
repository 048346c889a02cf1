package pool

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/tuner"
)

const gib = 1 << 30

// Preset is what a worker pool of one class starts with. Scale the cost
// priors to your models and datasets; they are what admission reserves for a
// slot before its footprint shows in the readings.
type Preset struct {
	Class    queues.Class
	Workflow tuner.SlotSupplierOptions
	Activity tuner.SlotSupplierOptions
	// Pollers for activity tasks: a few for GPU pools, more for CPU.
	ActivityPollers int
	// DrainWindow is how long running activities get to finish once the
	// worker starts stopping before they are cancelled and reported for a
	// retry elsewhere (see Drain). GPU work takes minutes; a pod's
	// termination grace period must cover it. Zero: no drain (the SDK's
	// WorkerStopTimeout alone decides).
	DrainWindow time.Duration
	// Workflows: the pool also runs workflow tasks. Presets of the
	// activity-only classes (GPU, HighMemory, VideoEncoding) leave it false,
	// and NewWorker disables their workflow worker, so that they hold no
	// workflow slot and no workflow long poll; workflows run on CPU pools.
	Workflows bool
}

// PresetFor returns the preset of a class; a user-defined class gets the CPU
// preset under its own name.
func PresetFor(c queues.Class) Preset {
	wf := tuner.DefaultWorkflowSlotSupplierOptions()
	p := Preset{Class: c, Workflow: wf, Workflows: c != queues.GPU && c != queues.HighMemory && c != queues.VideoEncoding}
	switch c {
	case queues.GPU:
		p.Activity = tuner.SlotSupplierOptions{
			Name: "gpu", MinSlots: 1, MaxSlots: 4, RampThrottle: 500 * time.Millisecond,
			Resources: tuner.GPUMemory | tuner.Memory,
			Cost:      tuner.Cost{GPUMemoryBytes: 6 * gib, MemoryBytes: 2 * gib},
		}
		p.ActivityPollers = 2
		p.DrainWindow = time.Minute
	case queues.HighMemory:
		p.Activity = tuner.SlotSupplierOptions{
			Name: "high-memory", MinSlots: 1, MaxSlots: 16, RampThrottle: 200 * time.Millisecond,
			Resources: tuner.Memory,
			Cost:      tuner.Cost{MemoryBytes: 4 * gib},
		}
		p.ActivityPollers = 2
		p.DrainWindow = 30 * time.Second
	case queues.VideoEncoding:
		p.Activity = tuner.SlotSupplierOptions{
			Name: "video-encoding", MinSlots: 1, MaxSlots: 8, RampThrottle: 200 * time.Millisecond,
			// Encoder: one NVENC session per slot where the controller
			// governs encoders (TargetEncoder); else CPU and memory alone.
			Resources: tuner.CPU | tuner.Memory | tuner.Encoder,
			Cost:      tuner.Cost{CPUCores: 2, MemoryBytes: gib, EncoderSessions: 1},
		}
		p.ActivityPollers = 2
		p.DrainWindow = 30 * time.Second
	default:
		p.Activity = tuner.SlotSupplierOptions{
			Name: "cpu", MinSlots: 1, MaxSlots: 200, RampThrottle: 20 * time.Millisecond,
			Resources: tuner.CPU | tuner.Memory,
			Cost:      tuner.Cost{CPUCores: 0.25, MemoryBytes: 64 << 20},
		}
		p.ActivityPollers = 4
		p.DrainWindow = 10 * time.Second
	}
	if c != queues.CPU && c != queues.GPU && c != queues.HighMemory && c != queues.VideoEncoding {
		p.Activity.Name = string(c)
	}
	return p
}

// ErrWorkerOptions reports worker.Options that cannot go with a tuner.
var ErrWorkerOptions = errors.New("pool: invalid worker options")

// NewWorker builds a worker polling q whose slots come from the class
// preset's suppliers on the shared controller. opts may set anything but the
// fixed concurrency limits (the SDK panics when those and a Tuner are both
// set; this returns an error instead). A zero WorkerStopTimeout becomes the
// preset's DrainWindow plus 10 s, and Drain(DrainWindow) is added to
// opts.Interceptors: Stop lets running activities finish within the window,
// then cancels the rest and waits for them to be reported, so that they are
// retried elsewhere at once and every slot is back when Stop returns. A
// WorkerStopTimeout set in opts must exceed the DrainWindow. A preset that does not serve workflows (Preset.Workflows
// false: the GPU, HighMemory and VideoEncoding presets) gets
// DisableWorkflowWorker, so a workflow registered on such a pool is not
// polled for. The tuner's Interceptor goes first in opts.Interceptors (a
// GPU activity finds its device with gpu.LeaseFromContext) and Heartbeats
// after them: the pool's activities are heartbeated on their behalf while
// they run. Close the
// returned Tuner after the worker stops; it leaves the shared controller
// open.
func NewWorker(c client.Client, reg *queues.Registry, q queues.Queue, ctrl *tuner.Controller, p Preset, opts worker.Options) (worker.Worker, *tuner.Tuner, error) {
	if reg != nil {
		if err := reg.Check(q); err != nil {
			return nil, nil, err
		}
	} else if err := queues.ValidateName(q.Name); err != nil {
		return nil, nil, err
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"MaxConcurrentActivityExecutionSize", opts.MaxConcurrentActivityExecutionSize != 0},
		{"MaxConcurrentWorkflowTaskExecutionSize", opts.MaxConcurrentWorkflowTaskExecutionSize != 0},
		{"MaxConcurrentLocalActivityExecutionSize", opts.MaxConcurrentLocalActivityExecutionSize != 0},
		{"MaxConcurrentSessionExecutionSize", opts.MaxConcurrentSessionExecutionSize != 0},
		{"MaxConcurrentNexusTaskExecutionSize", opts.MaxConcurrentNexusTaskExecutionSize != 0},
		{"Tuner", opts.Tuner != nil},
	} {
		if f.set {
			return nil, nil, fmt.Errorf("%w: %s is set; the preset's tuner decides concurrency", ErrWorkerOptions, f.name)
		}
	}
	if p.DrainWindow < 0 {
		return nil, nil, fmt.Errorf("%w: Preset.DrainWindow %v is negative", ErrWorkerOptions, p.DrainWindow)
	}
	if opts.WorkerStopTimeout != 0 && p.DrainWindow > 0 && opts.WorkerStopTimeout <= p.DrainWindow {
		return nil, nil, fmt.Errorf("%w: WorkerStopTimeout %v must exceed Preset.DrainWindow %v, or the SDK cancels activities first and Stop returns before they are reported",
			ErrWorkerOptions, opts.WorkerStopTimeout, p.DrainWindow)
	}
	t, err := tuner.New(tuner.Options{Name: q.Name, Shared: ctrl, Workflow: p.Workflow, Activity: p.Activity})
	if err != nil {
		return nil, nil, err
	}
	opts.Tuner = t
	if opts.WorkerStopTimeout == 0 {
		// The SDK's default (0) makes Stop return while tasks still run and
		// still hold slots; drain them so nothing is left reserved.
		opts.WorkerStopTimeout = p.DrainWindow + reportGrace
	}
	if !p.Workflows {
		opts.DisableWorkflowWorker = true
	}
	opts.Interceptors = append([]interceptor.WorkerInterceptor{t.Interceptor()}, opts.Interceptors...)
	opts.Interceptors = append(opts.Interceptors, Heartbeats())
	if p.DrainWindow > 0 {
		opts.Interceptors = append(opts.Interceptors, Drain(p.DrainWindow))
	}
	if opts.MaxConcurrentActivityTaskPollers == 0 && p.ActivityPollers > 0 {
		opts.MaxConcurrentActivityTaskPollers = p.ActivityPollers
	}
	return worker.New(c, q.Name, opts), t, nil
}
