package tuner

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestShowing(t *testing.T) {
	const s = int64(4 * time.Second)
	for _, tt := range []struct {
		age   time.Duration
		onset float64
		want  float64
	}{
		{0, 0, 0},
		{time.Second, 0, 0.25},
		{4 * time.Second, 0, 1},
		{9 * time.Second, 0, 1},
		{time.Second, 0.5, 0},
		{2 * time.Second, 0.5, 0},
		{3 * time.Second, 0.5, 0.5},
		{4 * time.Second, 0.5, 1},
		{3 * time.Second, 0.75, 0},
		{3500 * time.Millisecond, 0.75, 0.5},
	} {
		assert.InDelta(t, tt.want, showing(int64(tt.age), s, tt.onset), 1e-12, "age %v onset %v", tt.age, tt.onset)
	}
}

// The fit finds the settle time and the shape of footprints it is shown: one
// slot starts every 0.7 s and lives 10 s, readings every 100 ms for a
// minute, the footprint given by onset and settle time.
func TestSettleFitFindsTheShape(t *testing.T) {
	for _, tt := range []struct {
		declared, settle time.Duration
		onset            float64
		wantSettle       time.Duration // a candidate: declared × 2^(k/2)
		wantOnset        float64
	}{
		{2 * time.Second, 2 * time.Second, 0, 2 * time.Second, 0},
		{2 * time.Second, 6 * time.Second, 0, 5657 * time.Millisecond, 0},
		// A model load: 3.5 s of imports, then 2 s of allocation.
		{2 * time.Second, 5500 * time.Millisecond, 3.5 / 5.5, 5657 * time.Millisecond, 0.5},
		{8 * time.Second, 8 * time.Second, 0.75, 8 * time.Second, 0.75},
	} {
		t.Run(fmt.Sprintf("%v/onset=%.2f/declared=%v", tt.settle, tt.onset, tt.declared), func(t *testing.T) {
			f := newSettleFit(int64(tt.declared))
			const step, life, every = int64(100 * time.Millisecond), int64(10 * time.Second), int64(700 * time.Millisecond)
			var starts []int64
			for now := int64(0); now < int64(time.Minute); now += step {
				if now%every < step {
					starts = append(starts, now)
					f.slots++
				}
				var g [nSettle][nShape]float64
				var u float64
				for _, at := range starts {
					if age := now - at; age < life {
						u += showing(age, int64(tt.settle), tt.onset)
						f.shows(&g, at, now)
					}
				}
				f.add(u, &g)
				f.choose()
			}
			assert.InDelta(t, tt.wantSettle.Seconds(), time.Duration(f.cand[f.cur]).Seconds(), 0.01)
			assert.Equal(t, tt.wantOnset, settleOnset[f.shape])
		})
	}
}
