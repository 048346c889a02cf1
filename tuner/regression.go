package tuner

import "math"

// regression is a forgetting least-squares fit y ≈ β·x, kept as its normal
// equations so that one reading costs O(nonzero features²) and a solve
// O(p³) with p unknowns (a few dozen). Not safe for concurrent use.
type regression struct {
	p       int
	xtx     []float64 // p×p, row-major
	xty     []float64
	yy, n   float64
	l       []float64 // scratch: Cholesky factor
	beta    []float64
	varDiag []float64 // diagonal of (XᵀX + ridge)⁻¹
}

func newRegression(p int) *regression {
	return &regression{p: p, xtx: make([]float64, p*p), xty: make([]float64, p),
		l: make([]float64, p*p), beta: make([]float64, p), varDiag: make([]float64, p)}
}

// decay weighs everything seen so far by f (0 < f ≤ 1).
func (g *regression) decay(f float64) {
	for i := range g.xtx {
		g.xtx[i] *= f
	}
	for i := range g.xty {
		g.xty[i] *= f
	}
	g.yy *= f
	g.n *= f
}

// add adds one row: features x (only the indexes in nz are non-zero) and
// observation y.
func (g *regression) add(x []float64, nz []int, y float64) {
	for _, i := range nz {
		xi := x[i]
		g.xty[i] += xi * y
		row := g.xtx[i*g.p:]
		for _, j := range nz {
			row[j] += xi * x[j]
		}
	}
	g.yy += y * y
	g.n++
}

// weight is how much row weight column i has seen: Σ x_i².
func (g *regression) weight(i int) float64 { return g.xtx[i*g.p+i] }

// solve fits β with ridge ρ on every unknown and returns the residual
// variance (with a prior of prior² worth nu rows); ok is false if the
// system could not be factored.
func (g *regression) solve(rho, prior, nu float64) (sigma2 float64, ok bool) {
	p := g.p
	copy(g.l, g.xtx)
	for i := 0; i < p; i++ {
		g.l[i*p+i] += rho
	}
	// In-place Cholesky: A = L Lᵀ, L in the lower triangle.
	for j := 0; j < p; j++ {
		d := g.l[j*p+j]
		for k := 0; k < j; k++ {
			d -= g.l[j*p+k] * g.l[j*p+k]
		}
		if !(d > 0) {
			return 0, false
		}
		d = math.Sqrt(d)
		g.l[j*p+j] = d
		for i := j + 1; i < p; i++ {
			s := g.l[i*p+j]
			for k := 0; k < j; k++ {
				s -= g.l[i*p+k] * g.l[j*p+k]
			}
			g.l[i*p+j] = s / d
		}
	}
	g.cholSolve(g.xty, g.beta)
	// Residual sum of squares from the normal equations.
	rss := g.yy
	for i := 0; i < p; i++ {
		rss -= 2 * g.beta[i] * g.xty[i]
		row := g.xtx[i*p:]
		var s float64
		for j := 0; j < p; j++ {
			s += row[j] * g.beta[j]
		}
		rss += g.beta[i] * s
	}
	sigma2 = (max(rss, 0) + nu*prior*prior) / (g.n + nu)
	// Diagonal of the inverse, for the columns that have data.
	e := make([]float64, p)
	z := make([]float64, p)
	for i := 0; i < p; i++ {
		g.varDiag[i] = math.Inf(1)
		if g.weight(i) == 0 {
			continue
		}
		clear(e)
		e[i] = 1
		g.cholSolve(e, z)
		g.varDiag[i] = z[i]
	}
	return sigma2, true
}

// cholSolve solves L Lᵀ x = b.
func (g *regression) cholSolve(b, x []float64) {
	p := g.p
	for i := 0; i < p; i++ {
		s := b[i]
		for k := 0; k < i; k++ {
			s -= g.l[i*p+k] * x[k]
		}
		x[i] = s / g.l[i*p+i]
	}
	for i := p - 1; i >= 0; i-- {
		s := x[i]
		for k := i + 1; k < p; k++ {
			s -= g.l[k*p+i] * x[k]
		}
		x[i] = s / g.l[i*p+i]
	}
}
