package routing

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/headroomhq/headroom/queues"
)

// ResourceExhaustedType is the ApplicationError type of ResourceExhausted.
const ResourceExhaustedType = "headroom.ResourceExhausted"

// ResourceExhausted returns the error an activity raises when it ran out of a
// resource (host memory, CUDA memory). It is non-retryable on the queue it
// ran on, so that a route's escalation can move it to a bigger class.
func ResourceExhausted(resource string, cause error) error {
	return temporal.NewApplicationErrorWithOptions(fmt.Sprintf("%s exhausted", resource), ResourceExhaustedType,
		temporal.ApplicationErrorOptions{NonRetryable: true, Cause: cause, Details: []any{resource}})
}

// IsResourceExhausted reports whether err (an activity error) carries
// ResourceExhausted.
func IsResourceExhausted(err error) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == ResourceExhaustedType
}

// IsScheduleToStartTimeout reports whether no worker started the activity in
// time: the signal that a queue has no (or too few) workers.
func IsScheduleToStartTimeout(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START
}

// ClassDefaults are the activity options a class starts from. The GPU,
// high-memory and video classes heartbeat-time out after 30 s, so that a
// crashed worker's activities are retried within seconds; pool.NewWorker's
// workers heartbeat on their activities' behalf (pool.Heartbeats), so work
// that cannot heartbeat itself (a model load) is not timed out on a live
// worker. Activities run by other workers must heartbeat themselves within
// the timeout, or override it.
func ClassDefaults(c queues.Class) workflow.ActivityOptions {
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5,
		NonRetryableErrorTypes: []string{ResourceExhaustedType}}
	switch c {
	case queues.GPU:
		return workflow.ActivityOptions{StartToCloseTimeout: 2 * time.Hour, HeartbeatTimeout: 30 * time.Second, RetryPolicy: retry}
	case queues.HighMemory:
		return workflow.ActivityOptions{StartToCloseTimeout: time.Hour, HeartbeatTimeout: 30 * time.Second, RetryPolicy: retry}
	case queues.VideoEncoding:
		return workflow.ActivityOptions{StartToCloseTimeout: time.Hour, HeartbeatTimeout: 30 * time.Second, RetryPolicy: retry}
	default:
		return workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Minute, RetryPolicy: retry}
	}
}

// Options returns the class defaults for q with TaskQueue set, then every
// non-zero field of each override applied in order.
func Options(q queues.Queue, overrides ...workflow.ActivityOptions) workflow.ActivityOptions {
	o := ClassDefaults(q.Class)
	for _, ov := range overrides {
		merge(&o, ov)
	}
	o.TaskQueue = q.Name
	return o
}

// merge copies every non-zero field of src onto dst.
func merge(dst *workflow.ActivityOptions, src workflow.ActivityOptions) {
	d, s := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src)
	for i := 0; i < s.NumField(); i++ {
		if f := s.Field(i); d.Field(i).CanSet() && !f.IsZero() {
			d.Field(i).Set(f)
		}
	}
}

// WithQueue returns ctx with q's activity options (see Options).
func WithQueue(ctx workflow.Context, q queues.Queue, overrides ...workflow.ActivityOptions) workflow.Context {
	return workflow.WithActivityOptions(ctx, Options(q, overrides...))
}

// Route is where one activity runs.
type Route struct {
	Queue queues.Queue
	// Fallback runs the activity here when no worker on Queue starts it
	// within ScheduleToStart (which must then be set).
	Fallback *queues.Queue
	// ScheduleToStart bounds the wait on Queue when Fallback is set.
	ScheduleToStart time.Duration
	// Escalate runs the activity once on this bigger class when it fails
	// with ResourceExhausted.
	Escalate *queues.Queue
	// Options override the class defaults field by field.
	Options workflow.ActivityOptions
}

// Table maps activities to routes. Build it before workers start (it is
// read-only afterwards, so workflows may share it).
type Table struct {
	reg    *queues.Registry
	routes map[string]Route
}

// ErrUnrouted reports an activity the table has no route for.
var ErrUnrouted = errors.New("routing: activity has no route")

// NewTable returns an empty table whose queues must be declared in reg.
func NewTable(reg *queues.Registry) *Table {
	return &Table{reg: reg, routes: make(map[string]Route)}
}

// ActivityName is the name the SDK registers a function under (its name
// without package path), or the string itself.
func ActivityName(activity any) string {
	if s, ok := activity.(string); ok {
		return s
	}
	v := reflect.ValueOf(activity)
	if v.Kind() != reflect.Func {
		return fmt.Sprint(activity)
	}
	name := runtime.FuncForPC(v.Pointer()).Name()
	if i := strings.LastIndex(name, "."); i >= 0 {
		name = name[i+1:]
	}
	return strings.TrimSuffix(name, "-fm")
}

// Add routes an activity (function or name). Every queue in r must be
// declared in the table's registry.
func (t *Table) Add(activity any, r Route) error {
	name := ActivityName(activity)
	if name == "" {
		return fmt.Errorf("routing: empty activity name")
	}
	for _, q := range []*queues.Queue{&r.Queue, r.Fallback, r.Escalate} {
		if q == nil {
			continue
		}
		if err := t.reg.Check(*q); err != nil {
			return fmt.Errorf("routing: route for %s: %w", name, err)
		}
	}
	if r.Fallback != nil && r.ScheduleToStart <= 0 {
		return fmt.Errorf("routing: route for %s: Fallback needs ScheduleToStart", name)
	}
	t.routes[name] = r
	return nil
}

// Lookup returns the route of an activity.
func (t *Table) Lookup(activity any) (Route, error) {
	name := ActivityName(activity)
	r, ok := t.routes[name]
	if !ok {
		return Route{}, fmt.Errorf("%w: %s", ErrUnrouted, name)
	}
	return r, nil
}

// Execute runs activity on its route's queue. With a Fallback it moves to the
// fallback queue after a schedule-to-start timeout; with Escalate it runs
// once more on the bigger class after ResourceExhausted. The returned future
// carries the final attempt's result; it is deterministic under replay.
func (t *Table) Execute(ctx workflow.Context, activity any, args ...any) workflow.Future {
	r, err := t.Lookup(activity)
	if err != nil {
		f, s := workflow.NewFuture(ctx)
		s.SetError(err)
		return f
	}
	run := func(ctx workflow.Context, q queues.Queue, extra workflow.ActivityOptions) workflow.Future {
		return workflow.ExecuteActivity(WithQueue(ctx, q, r.Options, extra), activity, args...)
	}
	if r.Fallback == nil && r.Escalate == nil {
		return run(ctx, r.Queue, workflow.ActivityOptions{})
	}
	result, settable := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		var first workflow.ActivityOptions
		if r.Fallback != nil {
			first.ScheduleToStartTimeout = r.ScheduleToStart
		}
		f := run(ctx, r.Queue, first)
		err := f.Get(ctx, nil)
		switch {
		case err != nil && r.Fallback != nil && IsScheduleToStartTimeout(err):
			workflow.GetLogger(ctx).Info("routing: no worker started the activity in time; falling back",
				"queue", r.Queue.Name, "fallback", r.Fallback.Name)
			f = run(ctx, *r.Fallback, workflow.ActivityOptions{})
			err = f.Get(ctx, nil)
		}
		if err != nil && r.Escalate != nil && IsResourceExhausted(err) {
			workflow.GetLogger(ctx).Info("routing: resource exhausted; escalating", "escalate", r.Escalate.Name)
			f = run(ctx, *r.Escalate, workflow.ActivityOptions{})
		}
		settable.Chain(f)
	})
	return result
}

// Registrations records which activities each worker registers, by queue
// name, for Table.Check.
type Registrations map[string][]string

// Add records that a worker polling q registers these activities.
func (r Registrations) Add(q queues.Queue, activities ...any) {
	for _, a := range activities {
		r[q.Name] = append(r[q.Name], ActivityName(a))
	}
}

// ErrNotRegistered reports routed activities no worker on their queue has.
var ErrNotRegistered = errors.New("routing: routed activity not registered on its queue")

// Check reports every routed activity that no worker polling one of its
// queues (primary, fallback, escalation) registers.
func (t *Table) Check(regs Registrations) error {
	var missing []string
	for name, r := range t.routes {
		for _, q := range []*queues.Queue{&r.Queue, r.Fallback, r.Escalate} {
			if q == nil {
				continue
			}
			found := false
			for _, a := range regs[q.Name] {
				if a == name {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, fmt.Sprintf("%s on %s", name, q.Name))
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return fmt.Errorf("%w: %s", ErrNotRegistered, strings.Join(missing, ", "))
}
