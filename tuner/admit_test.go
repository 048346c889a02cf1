package tuner

import (
	"math"
	"testing"

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
