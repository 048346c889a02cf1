package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/headroomhq/headroom/scaling"
)

// The fleet simulation: one GPU pool scaled by the Kubernetes HPA, fed
// either by headroom's desired replicas (scaling.Recommender) or by the
// backlog alone (KEDA's Temporal scaler: ApproximateBacklogCount as an
// AverageValue metric), on the same arrivals. HPA semantics: every 15 s,
// desired = ⌈current × metric ÷ target⌉, no change within a 10 % tolerance,
// up at once, down to the highest recommendation of the last 300 s; pods
// start 60 s after they are asked for. Scaling in removes the newest pods,
// except that headroom's workers set their pod-deletion cost to their slots
// in use, so idle pods go first. A task on a removed pod is lost and
// queued again from the start.

const (
	fleetSlots   = 4 // slots per replica at its targets
	fleetMax     = 40
	fleetStartup = 60 // seconds from scale-up to a ready pod
	fleetHPA     = 15 // seconds between HPA decisions
	fleetWindow  = 300
	fleetHorizon = 2 * 3600
)

type fleetTask struct {
	arrived, started, left int
}

type fleetPod struct {
	readyAt int
	tasks   []*fleetTask
}

type fleetResult struct {
	waitP99, waitP50 float64 // seconds from arrival to the start of the attempt that finished
	replicaSeconds   float64
	busyScaleIns     int // pods removed with a task running
	killed           int // tasks lost on them
	done             int
}

// fleetArrivals draws a day's worth of bursts: a trickle plus a burst of
// 20–160 tasks over 1–5 minutes every 10–40 minutes; tasks run 30–600 s.
func fleetArrivals(seed uint64) [][]int {
	rng := rand.New(rand.NewPCG(seed, 99))
	arr := make([][]int, fleetHorizon)
	add := func(t, dur int) {
		if t < fleetHorizon {
			arr[t] = append(arr[t], dur)
		}
	}
	dur := func() int { return 30 + rng.IntN(571) }
	for t := range fleetHorizon {
		if rng.Float64() < 0.01 {
			add(t, dur())
		}
	}
	for t := rng.IntN(600); t < fleetHorizon; t += 600 + rng.IntN(1800) {
		n, over := 20+rng.IntN(141), 60+rng.IntN(241)
		for range n {
			add(t+rng.IntN(over), dur())
		}
	}
	return arr
}

// runFleet simulates the pool with headroom's signal (headroom true) or the
// backlog alone.
func runFleet(t *testing.T, arrivals [][]int, headroom bool) fleetResult {
	rec, err := scaling.NewRecommender(scaling.Policy{Max: fleetMax, PerReplica: fleetSlots, ScaleDownWindow: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	var res fleetResult
	var queue []*fleetTask
	var pods []*fleetPod
	var waits []float64
	type rec0 struct{ at, n int }
	var recent []rec0
	for now := 0; now < fleetHorizon; now++ {
		for _, d := range arrivals[now] {
			queue = append(queue, &fleetTask{arrived: now, left: d})
		}
		// Work, then dispatch to ready pods with free slots.
		for _, p := range pods {
			if p.readyAt > now {
				continue
			}
			kept := p.tasks[:0]
			for _, tk := range p.tasks {
				if tk.left--; tk.left > 0 {
					kept = append(kept, tk)
				} else {
					res.done++
					waits = append(waits, float64(tk.started-tk.arrived))
				}
			}
			p.tasks = kept
			for len(p.tasks) < fleetSlots && len(queue) > 0 {
				tk := queue[0]
				queue = queue[1:]
				tk.started = now
				p.tasks = append(p.tasks, tk)
			}
		}
		res.replicaSeconds += float64(len(pods))
		if now%fleetHPA != 0 {
			continue
		}
		// The metric and the HPA.
		current := len(pods)
		inUse, busy := 0, 0
		for _, p := range pods {
			inUse += len(p.tasks)
			if len(p.tasks) > 0 {
				busy++
			}
		}
		var raw int
		if headroom {
			raw = rec.Recommend(time.Unix(int64(now), 0), scaling.Signal{Backlog: int64(len(queue)), InUse: inUse, PerReplica: fleetSlots, BusyReplicas: busy})
		} else {
			raw = int(math.Ceil(float64(len(queue)) / fleetSlots)) // AverageValue target: fleetSlots tasks per replica
		}
		if current > 0 && raw > 0 && math.Abs(float64(raw)/float64(current)-1) <= 0.1 {
			raw = current // within the HPA's tolerance
		}
		recent = append(recent, rec0{now, raw})
		for len(recent) > 0 && recent[0].at <= now-fleetWindow {
			recent = recent[1:]
		}
		want := raw
		if raw < current {
			for _, r := range recent {
				want = max(want, r.n)
			}
			want = min(want, current)
		}
		want = min(want, fleetMax)
		for len(pods) < want {
			pods = append(pods, &fleetPod{readyAt: now + fleetStartup})
		}
		if len(pods) > want {
			// Newest first; headroom's pods are ranked by their deletion
			// cost (slots in use) before that.
			order := slices.Clone(pods)
			slices.SortStableFunc(order, func(a, b *fleetPod) int {
				if headroom && len(a.tasks) != len(b.tasks) {
					return len(a.tasks) - len(b.tasks)
				}
				return b.readyAt - a.readyAt
			})
			gone := order[:len(pods)-want]
			for _, p := range gone {
				if len(p.tasks) > 0 {
					res.busyScaleIns++
					res.killed += len(p.tasks)
					queue = append(p.tasks, queue...) // lost work, queued again
					for _, tk := range p.tasks {
						tk.left += now - tk.started // from the start
					}
				}
			}
			pods = slices.DeleteFunc(pods, func(p *fleetPod) bool { return slices.Contains(gone, p) })
		}
	}
	res.waitP50, res.waitP99 = quantile(waits, 0.5), quantile(waits, 0.99)
	return res
}

// TestFleet: over 20 arrival patterns, headroom's signal never scales in a
// pod with a task running; the backlog-only scaler does. Backlog wait and
// replica-seconds of both go to bench/README.md.
func TestFleet(t *testing.T) {
	var hw, bw, hr, br, hk, bk []float64
	busyBacklogOnly := 0
	for seed := range uint64(20) {
		arr := fleetArrivals(seed)
		h, b := runFleet(t, arr, true), runFleet(t, arr, false)
		if h.busyScaleIns != 0 {
			t.Errorf("seed %d: headroom's signal scaled in %d pods with tasks running (%d tasks lost)", seed, h.busyScaleIns, h.killed)
		}
		busyBacklogOnly += b.busyScaleIns
		hw, bw = append(hw, h.waitP99), append(bw, b.waitP99)
		hr, br = append(hr, h.replicaSeconds/3600), append(br, b.replicaSeconds/3600)
		hk, bk = append(hk, float64(h.killed)), append(bk, float64(b.killed))
	}
	if busyBacklogOnly == 0 {
		t.Error("the backlog-only scaler never scaled in a busy pod: the comparison shows nothing")
	}
	q := func(v []float64) string {
		return fmt.Sprintf("%.0f / %.0f / %.0f", quantile(v, 0.1), quantile(v, 0.5), quantile(v, 0.9))
	}
	t.Logf("over 20 arrival patterns (p10 / p50 / p90):")
	t.Logf("| scaler | backlog wait p99, s | replica-hours | tasks lost to scale-in |")
	t.Logf("| headroom (scaling.Recommender) | %s | %s | %s |", q(hw), q(hr), q(hk))
	t.Logf("| backlog only | %s | %s | %s |", q(bw), q(br), q(bk))
}
