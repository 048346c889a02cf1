package tuner

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNoiseEstimate(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name     string
		reading  func(i int) float64
		min, max float64
	}{
		{"steady ramp is not noise", func(i int) float64 { return 0.2 + 0.001*float64(i) }, 0, 1e-9},
		{"uniform ±0.02 noise", func(i int) float64 { return 0.5 + (rng.Float64()*2-1)*0.02 }, 0.015, 0.03},
		{"one batch of tasks ending is not noise", func(i int) float64 {
			if i < 300 {
				return 0.8
			}
			return 0.2
		}, 0, 1e-9},
		{"ramps with kinks (tasks starting and ending)", func(i int) float64 { return 0.2 + 0.03*float64(i%20)/20 }, 0, 1e-9},
		{"a reading now and then taken between a task's end and its release", func(i int) float64 {
			if i%8 == 0 {
				return 0.47
			}
			return 0.5
		}, 0, 1e-9},
	}
	for _, tt := range tests {
		var z noise
		for i := 0; i < 600; i++ {
			z.add(tt.reading(i))
		}
		assert.GreaterOrEqual(t, z.margin, tt.min, tt.name)
		assert.LessOrEqual(t, z.margin, tt.max, tt.name)
	}
}
