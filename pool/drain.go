package pool

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
)

// WorkerStoppingType is the ApplicationError type of an activity attempt
// cancelled at the end of its worker's drain window. It is retryable: the
// server retries the attempt, on another worker, after the retry policy's
// backoff.
const WorkerStoppingType = "headroom.WorkerStopping"

// reportGrace is how long NewWorker's WorkerStopTimeout allows, past the
// drain window, for cancelled activities to return and be reported.
const reportGrace = 10 * time.Second

// Drain is the worker interceptor NewWorker installs with the preset's
// DrainWindow. When the worker starts stopping (its pollers stop), running
// activities get window to finish; then each one still running has its
// context cancelled, is logged, and fails with WorkerStoppingType, while the
// worker can still report it: the server retries it at once instead of at
// its heartbeat timeout, and its slot is back before Stop returns. The
// worker's WorkerStopTimeout must exceed window (NewWorker sets it to window
// plus 10 s), or the SDK cancels the activities first and Stop returns
// before they are reported. Local activities are left to the workflow task.
// An activity that ignores its context still runs until WorkerStopTimeout.
func Drain(window time.Duration) interceptor.WorkerInterceptor { return &drain{window: window} }

type drain struct {
	interceptor.WorkerInterceptorBase
	window time.Duration
}

func (d *drain) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	a := &drainingActivity{window: d.window}
	a.Next = next
	return a
}

type drainingActivity struct {
	interceptor.ActivityInboundInterceptorBase
	window time.Duration
}

func (a *drainingActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	if activity.IsActivity(ctx) && activity.GetInfo(ctx).IsLocalActivity {
		return a.Next.ExecuteActivity(ctx, in)
	}
	run, cancel := context.WithCancel(ctx)
	defer cancel()
	cut, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-activity.GetWorkerStopChannel(ctx):
		case <-run.Done():
			return
		}
		t := time.NewTimer(a.window)
		defer t.Stop()
		select {
		case <-t.C:
			// The activity logger names the activity, its attempt and workflow.
			activity.GetLogger(ctx).Warn("Worker stopping: cancelling the activity at the end of the drain window", "DrainWindow", a.window)
			close(cut)
			cancel()
		case <-run.Done():
		}
	}()
	res, err := a.Next.ExecuteActivity(run, in)
	cancel()
	<-done
	select {
	case <-cut:
		// Only a failure the cancellation caused is the worker's: an
		// activity's own error (a non-retryable one) stays as it is.
		if errors.Is(err, context.Canceled) || temporal.IsCanceledError(err) {
			return nil, temporal.NewApplicationErrorWithCause("worker stopping: cancelled at the end of its drain window", WorkerStoppingType, err)
		}
	default:
	}
	return res, err
}
