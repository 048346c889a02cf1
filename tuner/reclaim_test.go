package tuner

import "testing"

func TestReleasedVerdict(t *testing.T) {
	// history: residuals added before the reading; e: the new residual; rel:
	// the released footprint (fractions of capacity).
	for _, tc := range []struct {
		name    string
		history []float64
		e, rel  float64
		want    verdict
	}{
		{"nothing released", []float64{0, 0, 0}, 0, 0, unknown},
		{"no history", []float64{0}, 0, 0.03, unknown},
		{"freed: residual unchanged", []float64{0.01, 0.01, 0.01}, 0.01, 0.03, freed},
		{"kept: residual rose by the footprint", []float64{0.01, 0.01, 0.01}, 0.04, 0.03, kept},
		{"kept: most of it still there", []float64{0, 0, 0}, 0.02, 0.03, kept},
		{"freed: under half still there", []float64{0, 0, 0}, 0.014, 0.03, freed},
		{"freed early: one low residual before the release is not held against it", []float64{0, 0, 0, 0, 0, 0, -0.03}, 0, 0.03, freed},
		{"too small to tell from the noise", []float64{0, 0.02, -0.02, 0.02, -0.02, 0.02}, 0.05, 0.03, unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var z noise
			for _, r := range tc.history {
				z.add(r)
			}
			if got := z.released(tc.e, tc.rel); got != tc.want {
				t.Errorf("released(%v, %v) after %v (margin %.3f) = %v, want %v", tc.e, tc.rel, tc.history, z.margin, got, tc.want)
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
		{freed, false}, {freed, false}, {unknown, false}, {freed, false}, {freed, true},
		{unknown, true}, {kept, false}, {freed, false}, {freed, false}, {freed, false}, {freed, true},
	}
	for i, s := range steps {
		r.judge(s.v)
		if r.prompt() != s.want {
			t.Fatalf("step %d (%v): prompt %v, want %v", i, s.v, r.prompt(), s.want)
		}
	}
}
