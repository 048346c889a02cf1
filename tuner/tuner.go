package tuner

import (
	"cmp"
	"fmt"

	"go.temporal.io/sdk/worker"
)

// Options configures [New]. A zero SlotSupplierOptions field takes that
// kind's Default…SlotSupplierOptions.
type Options struct {
	// Name, if set, prefixes every supplier's name ("gpu-ml-inference/activity"),
	// so that several workers' tuners can share a controller: supplier names
	// are unique per controller. It is also the task_queue of the
	// SDK-named series (ControllerOptions.SDKSeries): give the worker's task
	// queue, as pool.NewWorker does.
	Name string
	// Controller configures the controller New creates. Ignored if Shared is set.
	Controller ControllerOptions
	// Shared uses an existing controller (one per process is the rule when
	// several workers run in it); Tuner.Close then leaves it open.
	Shared *Controller

	Workflow      SlotSupplierOptions
	Activity      SlotSupplierOptions
	LocalActivity SlotSupplierOptions
	Nexus         SlotSupplierOptions
	Session       SlotSupplierOptions
}

// Tuner is a worker.WorkerTuner whose five suppliers share one Controller.
type Tuner struct {
	c                                    *Controller
	own                                  bool
	workflow, activity, local, nexus, ss *SlotSupplier
}

var _ worker.WorkerTuner = (*Tuner)(nil)

// New builds a Tuner. Use it as worker.Options{Tuner: t}; do not also set
// worker.Options.MaxConcurrent*ExecutionSize (the SDK panics on both).
func New(opts Options) (*Tuner, error) {
	t := &Tuner{c: opts.Shared}
	if t.c == nil {
		c, err := NewController(opts.Controller)
		if err != nil {
			return nil, fmt.Errorf("Controller: %w", err)
		}
		t.c, t.own = c, true
	}
	for _, k := range []struct {
		field string
		opts  SlotSupplierOptions
		def   func() SlotSupplierOptions
		dst   **SlotSupplier
		sdk   string // the SDK's worker_type
	}{
		{"Workflow", opts.Workflow, DefaultWorkflowSlotSupplierOptions, &t.workflow, "WorkflowWorker"},
		{"Activity", opts.Activity, DefaultActivitySlotSupplierOptions, &t.activity, "ActivityWorker"},
		{"LocalActivity", opts.LocalActivity, named(DefaultActivitySlotSupplierOptions, "local_activity"), &t.local, "LocalActivityWorker"},
		{"Nexus", opts.Nexus, named(DefaultWorkflowSlotSupplierOptions, "nexus"), &t.nexus, "NexusWorker"},
		{"Session", opts.Session, named(DefaultActivitySlotSupplierOptions, "session"), &t.ss, ""},
	} {
		o := k.opts
		if o == (SlotSupplierOptions{}) {
			o = k.def()
		}
		if opts.Name != "" {
			o.Name = opts.Name + "/" + cmp.Or(o.Name, "slots")
		}
		var tags sdkTags
		if opts.Name != "" && k.sdk != "" {
			tags = sdkTags{workerType: k.sdk, taskQueue: opts.Name}
		}
		s, err := newSlotSupplier(t.c, o, tags)
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("%s: %w", k.field, err)
		}
		*k.dst = s
	}
	return t, nil
}

// Controller returns the controller the suppliers share.
func (t *Tuner) Controller() *Controller { return t.c }

// Close takes the suppliers off the controller (each once its slots are
// released) and closes the controller if New created it.
func (t *Tuner) Close() error {
	for _, s := range []*SlotSupplier{t.workflow, t.activity, t.local, t.nexus, t.ss} {
		if s != nil {
			s.Close()
		}
	}
	if t.own {
		return t.c.Close()
	}
	return nil
}

func named(def func() SlotSupplierOptions, name string) func() SlotSupplierOptions {
	return func() SlotSupplierOptions {
		o := def()
		o.Name = name
		return o
	}
}

func (t *Tuner) GetWorkflowTaskSlotSupplier() worker.SlotSupplier    { return t.workflow }
func (t *Tuner) GetActivityTaskSlotSupplier() worker.SlotSupplier    { return t.activity }
func (t *Tuner) GetLocalActivitySlotSupplier() worker.SlotSupplier   { return t.local }
func (t *Tuner) GetNexusSlotSupplier() worker.SlotSupplier           { return t.nexus }
func (t *Tuner) GetSessionActivitySlotSupplier() worker.SlotSupplier { return t.ss }

// Stats returns the activity and workflow suppliers' Stats.
func (t *Tuner) Stats() (activity, workflow Stats) {
	return t.activity.Stats(), t.workflow.Stats()
}
