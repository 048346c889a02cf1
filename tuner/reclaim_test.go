package tuner

import (
	"math"
	"testing"
)

func TestReleaseVerdict(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name                 string
		surplus, rel, margin float64
		want                 verdict
	}{
		{"nothing released", 0, 0, 0, unknown},
		{"no baseline yet", nan, 0.03, 0, unknown},
		{"freed: the reading matches the model", 0, 0.03, 0.001, freed},
		{"freed early: the reading is below the model", -0.05, 0.03, 0.001, freed},
		{"kept: the released footprint is still there", 0.03, 0.03, 0.001, kept},
		{"kept: most of it is still there", 0.02, 0.03, 0.001, kept},
		{"freed: under half is still there", 0.014, 0.03, 0.001, freed},
		{"kept: lingering from earlier releases too", 0.12, 0.03, 0.001, kept},
		{"too small to tell from the noise", 0.05, 0.03, 0.02, unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := releaseVerdict(tc.surplus, tc.rel, tc.margin); got != tc.want {
				t.Errorf("releaseVerdict(%v, %v, %v) = %v, want %v", tc.surplus, tc.rel, tc.margin, got, tc.want)
			}
		})
	}
}

func TestDeficit(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name                              string
		base                              float64
		known                             bool
		footprint, reading, want, surplus float64
	}{
		{"no baseline: credit nothing", 0, false, 0, 0, math.Inf(1), math.NaN()},
		{"reading as modeled", 10 * gib, true, 20 * gib, 30 * gib, 0, 0},
		{"a task's 10 GiB freed before its release", 10 * gib, true, 20 * gib, 20 * gib, 10 * gib, -10 * gib},
		{"lingering memory is surplus, not deficit", 10 * gib, true, 20 * gib, 35 * gib, 0, 5 * gib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := unmodeled(tc.base, tc.known, tc.footprint, tc.reading)
			if !(s == tc.surplus || math.IsNaN(s) && math.IsNaN(tc.surplus)) {
				t.Errorf("unmodeled = %v, want %v", s, tc.surplus)
			}
			if d := deficit(s); d != tc.want {
				t.Errorf("deficit = %v, want %v", d, tc.want)
			}
		})
	}
}

func TestReclaimTrust(t *testing.T) {
	var r reclaim
	steps := []struct {
		v    verdict
		want bool
	}{
		{freed, false}, {freed, false}, {unknown, false}, {freed, false}, {freed, false}, {freed, false}, {freed, false}, {freed, false}, {freed, true},
		{unknown, true}, {kept, false}, {freed, false}, {freed, false}, {freed, false}, {freed, false}, {freed, false}, {freed, false}, {freed, false}, {freed, true},
	}
	for i, s := range steps {
		r.judge(s.v)
		if r.prompt() != s.want {
			t.Fatalf("step %d (%v): prompt %v, want %v", i, s.v, r.prompt(), s.want)
		}
	}
}
