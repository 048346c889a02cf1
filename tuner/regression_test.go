package tuner

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The fit recovers known coefficients from noisy rows, and its standard
// errors shrink with data: what learning relies on to call a bin known.
func TestRegressionRecovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	truth := []float64{0.5, 2, -1, 0}
	g := newRegression(len(truth))
	x := make([]float64, len(truth))
	nz := []int{0, 1, 2} // column 3 never has data
	for range 2000 {
		x[0] = 1
		x[1] = float64(rng.IntN(5))
		x[2] = float64(rng.IntN(3))
		y := truth[0]*x[0] + truth[1]*x[1] + truth[2]*x[2] + 0.1*rng.NormFloat64()
		g.add(x, nz, y)
	}
	s2, ok := g.solve(1e-6, 0.1, 1)
	if !ok {
		t.Fatal("not factored")
	}
	for i := 0; i < 3; i++ {
		se := math.Sqrt(s2 * g.varDiag[i])
		if math.Abs(g.beta[i]-truth[i]) > 4*se || se > 0.02 {
			t.Errorf("β[%d] = %.3f ± %.3f, want %.3f", i, g.beta[i], se, truth[i])
		}
	}
	if !math.IsInf(g.varDiag[3], 1) {
		t.Errorf("a column without data has variance %v, want +Inf", g.varDiag[3])
	}
	if math.Abs(math.Sqrt(s2)-0.1) > 0.01 {
		t.Errorf("σ = %.3f, want 0.1", math.Sqrt(s2))
	}
}
