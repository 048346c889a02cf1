package scaling_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/headroomhq/headroom/scaling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDesired(t *testing.T) {
	p := scaling.Policy{Min: 0, Max: 10, PerReplica: 4}
	for _, tc := range []struct {
		name string
		s    scaling.Signal
		want int
	}{
		{"empty queue, nothing held: zero", scaling.Signal{}, 0},
		{"from zero on the server's backlog alone", scaling.Signal{Backlog: 200}, 10},
		{"backlog at the declared capacity", scaling.Signal{Backlog: 9}, 3},
		{"a running replica's capacity wins", scaling.Signal{Backlog: 9, PerReplica: 9}, 1},
		{"busy slots, backlog 0: not scaled in", scaling.Signal{InUse: 12}, 3},
		{"busy slots count with the backlog", scaling.Signal{Backlog: 4, InUse: 12}, 4},
		{"one slot held keeps a replica", scaling.Signal{InUse: 1}, 1},
		{"busy slots spread over three replicas keep three", scaling.Signal{InUse: 3, BusyReplicas: 3}, 3},
		{"bounded by Max", scaling.Signal{Backlog: 1000, InUse: 8}, 10},
		{"negative inputs read as zero", scaling.Signal{Backlog: -5, InUse: -1}, 0},
	} {
		got, err := scaling.Desired(tc.s, p)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, tc.name)
	}
	got, err := scaling.Desired(scaling.Signal{}, scaling.Policy{Min: 2, Max: 10, PerReplica: 4})
	require.NoError(t, err)
	assert.Equal(t, 2, got, "never below Min")
}

// The HPA's scale-down stabilization: up at once, down only once the
// higher recommendations have left the window.
func TestRecommenderStabilizesScaleDown(t *testing.T) {
	r, err := scaling.NewRecommender(scaling.Policy{Max: 20, PerReplica: 10, ScaleDownWindow: time.Minute})
	require.NoError(t, err)
	t0 := time.Unix(0, 0)
	for _, st := range []struct {
		at   time.Duration
		s    scaling.Signal
		want int
	}{
		{0, scaling.Signal{Backlog: 50}, 5},
		{10 * time.Second, scaling.Signal{Backlog: 120}, 12}, // up at once
		{20 * time.Second, scaling.Signal{Backlog: 10}, 12},  // down held
		{69 * time.Second, scaling.Signal{Backlog: 10}, 12},
		{71 * time.Second, scaling.Signal{Backlog: 10}, 1}, // the 12 has left the window
		{80 * time.Second, scaling.Signal{}, 1},
		{132 * time.Second, scaling.Signal{}, 0}, // empty, nothing held, after the window
		{140 * time.Second, scaling.Signal{InUse: 3}, 1},
	} {
		assert.Equal(t, st.want, r.Recommend(t0.Add(st.at), st.s), "at %v with %+v", st.at, st.s)
	}
}

func TestPolicyValidation(t *testing.T) {
	for _, tc := range []struct {
		p     scaling.Policy
		field string
	}{
		{scaling.Policy{Min: -1, Max: 1, PerReplica: 1}, "Min"},
		{scaling.Policy{Max: 0, PerReplica: 1}, "Max"},
		{scaling.Policy{Min: 3, Max: 2, PerReplica: 1}, "Max"},
		{scaling.Policy{Max: 1}, "PerReplica"},
		{scaling.Policy{Max: 1, PerReplica: 1, ScaleDownWindow: -time.Second}, "ScaleDownWindow"},
	} {
		_, err := scaling.NewRecommender(tc.p)
		require.Error(t, err)
		assert.True(t, errors.Is(err, scaling.ErrInvalidPolicy))
		assert.Contains(t, err.Error(), tc.field)
	}
}

func ExampleDesired() {
	// A GPU pool: one replica holds 7 slots at its targets. 30 tasks wait
	// and 5 run.
	n, _ := scaling.Desired(scaling.Signal{Backlog: 30, InUse: 5, PerReplica: 7}, scaling.Policy{Max: 8, PerReplica: 7})
	fmt.Println(n)
	// Output: 5
}
