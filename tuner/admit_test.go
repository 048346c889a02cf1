package tuner

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRoom(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		name                                string
		target, measured, capacity, pending float64
		cost                                float64 // a slot of this cost
		fits                                bool
	}{
		{"room left", 0.8, 0.5, 10 * gib, 1 * gib, 2 * gib, true},
		{"exact fit despite float rounding", 0.8, 0.2 + 19*0.03, 64 * gib, 0, 0.03 * 64 * gib, true},
		{"pending takes the room", 0.8, 0.5, 10 * gib, 2.5 * gib, 1 * gib, false},
		{"at target admits nothing, not even zero cost", 0.8, 0.8, 10 * gib, 0, 0, false},
		{"over target", 0.8, 0.9, 10 * gib, 0, 0, false},
		{"capacity unknown: only the reading is judged", 0.8, 0.5, 0, 5 * gib, 100 * gib, true},
		{"capacity unknown, over target", 0.8, 0.85, 0, 0, 0, false},
	}
	for _, tt := range tests {
		r := room(tt.target, tt.measured, tt.capacity, tt.pending)
		assert.Equal(t, tt.fits, tt.cost <= r, "%s: room %v", tt.name, r)
	}
	assert.True(t, math.IsInf(room(0.8, 0.8, 1, 0), -1))
}

func TestGate(t *testing.T) {
	const ms = int64(time.Millisecond)
	for _, tc := range []struct {
		name   string
		g      gate
		now    int64
		fresh  bool
		bypass bool
		reason Reason
		wait   time.Duration
	}{
		{"at max", gate{issued: 4, min: 1, max: 4, lastIssue: -1}, 0, true, false, ReasonMax, 0},
		{"max wins over min", gate{issued: 2, min: 5, max: 2, lastIssue: -1}, 0, true, false, ReasonMax, 0},
		{"below min bypasses resources", gate{issued: 0, min: 1, max: 4, lastIssue: -1}, 0, false, true, ReasonNone, 0},
		{"below min ignores the ramp", gate{issued: 0, min: 1, max: 4, ramp: 50 * ms, lastIssue: 0}, 1 * ms, true, true, ReasonNone, 0},
		{"stale readings refuse above min", gate{issued: 1, min: 1, max: 4, lastIssue: -1}, 0, false, false, ReasonStale, 0},
		{"ramp: too soon, with the rest to wait", gate{issued: 1, max: 4, ramp: 50 * ms, lastIssue: 100 * ms}, 130 * ms, true, false, ReasonRamp, 20 * time.Millisecond},
		{"ramp: exactly the spacing", gate{issued: 1, max: 4, ramp: 50 * ms, lastIssue: 100 * ms}, 150 * ms, true, false, ReasonNone, 0},
		{"ramp: nothing issued yet", gate{issued: 0, max: 4, ramp: 50 * ms, lastIssue: -1}, 0, true, false, ReasonNone, 0},
		{"ramp: a clock read before the last issue still waits", gate{issued: 1, max: 4, ramp: 50 * ms, lastIssue: 100 * ms}, 90 * ms, true, false, ReasonRamp, 60 * time.Millisecond},
		{"no throttle: decide by the budgets", gate{issued: 3, max: 4, lastIssue: 5}, 5, true, false, ReasonNone, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bypass, reason, wait := tc.g.check(tc.now, tc.fresh)
			if bypass != tc.bypass || reason != tc.reason || wait != tc.wait {
				t.Errorf("check(%d, %v) = %v, %v, %v; want %v, %v, %v", tc.now, tc.fresh, bypass, reason, wait, tc.bypass, tc.reason, tc.wait)
			}
		})
	}
}
