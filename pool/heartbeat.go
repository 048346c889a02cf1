package pool

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/interceptor"

	"github.com/headroomhq/headroom/internal/heartbeat"
)

// Heartbeats is the worker interceptor NewWorker installs: while an activity
// with a heartbeat timeout runs, it heartbeats on the activity's behalf
// whenever the activity has not for a third of that timeout, so that a model
// load or a step that cannot heartbeat is not timed out on a healthy worker,
// and a dead worker is still noticed within the timeout (its process no
// longer heartbeats). The heartbeats carry the details the activity last
// recorded, in this attempt or, before it records any, the previous
// attempt's (up to heartbeat.MaxDetails values), so progress details are never
// replaced by empty ones. An activity that records heartbeats keeps its own
// cadence; those calls pass through unchanged.
//
// What it gives up: a heartbeat timeout no longer tells a hung activity from
// a working one on a live worker; StartToCloseTimeout still bounds it.
func Heartbeats() interceptor.WorkerInterceptor { return &heartbeats{} }

type heartbeats struct {
	interceptor.WorkerInterceptorBase
}

// InterceptActivity is called once per activity execution: the state below
// is one attempt's.
func (*heartbeats) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	a := &beatingActivity{}
	a.Next = next
	return a
}

type beatingActivity struct {
	interceptor.ActivityInboundInterceptorBase
	out beatingOutbound
}

func (a *beatingActivity) Init(out interceptor.ActivityOutboundInterceptor) error {
	a.out.Next = out
	return a.Next.Init(&a.out)
}

func (a *beatingActivity) ExecuteActivity(ctx context.Context, in *interceptor.ExecuteActivityInput) (any, error) {
	every := a.out.GetInfo(ctx).HeartbeatTimeout / 3
	if every <= 0 { // no heartbeat timeout (or a local activity): nothing to keep alive
		return a.Next.ExecuteActivity(ctx, in)
	}
	a.out.carryOver(ctx)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				a.out.beat(ctx, every)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	return a.Next.ExecuteActivity(ctx, in)
}

// beatingOutbound remembers when the activity last heartbeated and with
// what details.
type beatingOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	mu      sync.Mutex
	last    time.Time
	details []any
}

// carryOver takes the previous attempt's details as the ones to resend.
func (o *beatingOutbound) carryOver(ctx context.Context) {
	d := heartbeat.Previous(o.Next.HasHeartbeatDetails(ctx), func(ptrs ...any) error { return o.Next.GetHeartbeatDetails(ctx, ptrs...) })
	if d == nil {
		return
	}
	o.mu.Lock()
	o.details = d
	o.mu.Unlock()
}

func (o *beatingOutbound) RecordHeartbeat(ctx context.Context, details ...any) {
	o.mu.Lock()
	o.last, o.details = time.Now(), details
	o.mu.Unlock()
	o.Next.RecordHeartbeat(ctx, details...)
}

// beat heartbeats with the latest details unless the activity did within
// every.
func (o *beatingOutbound) beat(ctx context.Context, every time.Duration) {
	o.mu.Lock()
	if time.Since(o.last) < every {
		o.mu.Unlock()
		return
	}
	o.last = time.Now()
	d := o.details
	o.mu.Unlock()
	o.Next.RecordHeartbeat(ctx, d...)
}
