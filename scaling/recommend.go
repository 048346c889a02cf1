package scaling

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidPolicy is wrapped by every error about a bad Policy.
var ErrInvalidPolicy = errors.New("scaling: invalid policy")

// Policy bounds one pool's replicas.
type Policy struct {
	// Min and Max bound the recommendation; Max must be at least 1 and at
	// least Min. Min 0 allows scaling to zero.
	Min, Max int
	// PerReplica is the slots one replica holds at its targets when none
	// runs to say (scaling from zero): for a GPU pool, its devices times
	// what fits on one. At least 1.
	PerReplica int
	// ScaleDownWindow is how long a higher recommendation holds before the
	// count goes down. Zero: 5 minutes, the HPA's default.
	ScaleDownWindow time.Duration
}

func (p *Policy) validate() error {
	switch {
	case p.Min < 0:
		return fmt.Errorf("%w: Min %d is negative", ErrInvalidPolicy, p.Min)
	case p.Max < 1 || p.Max < p.Min:
		return fmt.Errorf("%w: Max %d must be at least 1 and at least Min (%d)", ErrInvalidPolicy, p.Max, p.Min)
	case p.PerReplica < 1:
		return fmt.Errorf("%w: PerReplica %d must be at least 1", ErrInvalidPolicy, p.PerReplica)
	case p.ScaleDownWindow < 0:
		return fmt.Errorf("%w: ScaleDownWindow %v is negative", ErrInvalidPolicy, p.ScaleDownWindow)
	}
	if p.ScaleDownWindow == 0 {
		p.ScaleDownWindow = 5 * time.Minute
	}
	return nil
}

// Signal is what one decision is made from.
type Signal struct {
	// Backlog is the tasks waiting in the queue (the server's
	// ApproximateBacklogCount).
	Backlog int64
	// InUse is the slots running tasks, over every replica of the pool.
	InUse int
	// PerReplica is the slots one running replica holds at its targets
	// (Stats.Issued + Stats.Fit of its supplier: what it holds, polls
	// included, and what more fits); 0: none runs, use the
	// policy's.
	PerReplica int
	// BusyReplicas is how many replicas have a slot in use. Slots do not
	// move between replicas, so none of those may go: the count never falls
	// below it, and the worker's pod-deletion cost (its slots in use) steers
	// Kubernetes to remove idle replicas first.
	BusyReplicas int
}

// Desired is the replica count for s under p, without stabilization.
func Desired(s Signal, p Policy) (int, error) {
	if err := p.validate(); err != nil {
		return 0, err
	}
	return desired(s, p), nil
}

func desired(s Signal, p Policy) int {
	per := int64(p.PerReplica)
	if s.PerReplica > 0 {
		per = int64(s.PerReplica)
	}
	inUse := int64(max(s.InUse, 0))
	backlog := max(s.Backlog, 0)
	need := ceilDiv(backlog+inUse, per)
	floor := max(ceilDiv(inUse, per), int64(s.BusyReplicas)) // never scale in a replica with busy slots
	n := min(max(need, int64(p.Min)), int64(p.Max))
	return int(max(n, floor))
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// Recommender applies Desired with the scale-down stabilization: up at
// once, down only to the highest recommendation within ScaleDownWindow.
// Safe for use by one goroutine at a time.
type Recommender struct {
	p       Policy
	history []point
}

type point struct {
	at time.Time
	n  int
}

// NewRecommender validates p.
func NewRecommender(p Policy) (*Recommender, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	return &Recommender{p: p}, nil
}

// Recommend returns the replica count for s at now.
func (r *Recommender) Recommend(now time.Time, s Signal) int {
	n := desired(s, r.p)
	cut := now.Add(-r.p.ScaleDownWindow)
	i := 0
	for i < len(r.history) && !r.history[i].at.After(cut) {
		i++
	}
	r.history = append(r.history[:0], r.history[i:]...)
	r.history = append(r.history, point{now, n})
	best := n
	for _, h := range r.history {
		best = max(best, h.n)
	}
	return best
}
