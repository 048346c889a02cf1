package tuner_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/headroomhq/headroom/internal/sim"
	"github.com/headroomhq/headroom/tuner"
)

// A prior below the true cost, or none at all, is corrected from the
// readings. While the supplier probes (a few slots in flight until its cost is
// seen) the host stays under target; a supplier that does not govern a
// resource learns nothing from it.
func TestLearnsUnderestimatedCost(t *testing.T) {
	for _, tt := range []struct {
		prior     float64 // fraction of memory
		trustCost bool
	}{
		{prior: 0.01},
		{prior: 0},
		// Trusting a wrong prior filled the budget with underpriced slots
		// before the first one showed (peak 0.92). The pending floor (what the
		// readings do not show yet, at the learned average per slot) now holds
		// that too; probing remains the guard for the very first slots.
		{prior: 0.01, trustCost: true},
	} {
		t.Run(fmt.Sprintf("prior=%.0f%%/trust=%v", 100*tt.prior, tt.trustCost), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sc := slowAlloc(2)
				sc.Duration = 40 * time.Second
				// Tasks really take 3 % of memory.
				c := newController(t, sc.Host, tuner.ControllerOptions{TargetMemory: 0.8})
				defer c.Close()
				prior := uint64(tt.prior * 64 * GiB)
				sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{MinSlots: 1, MaxSlots: 1000, RampThrottle: 50 * time.Millisecond,
					Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: prior}, SettleTime: 2 * time.Second, TrustCost: tt.trustCost})
				require.NoError(t, err)
				other, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{MaxSlots: 10, Resources: tuner.CPU, Cost: tuner.Cost{CPUCores: 0.5}})
				require.NoError(t, err)
				res := sim.Run(sup, sc)
				learned := float64(sup.Stats().Cost.MemoryBytes) / float64(64*GiB)
				t.Logf("learned %.2f%% of memory per slot (true 3%%); peak %.3f mean %.3f", 100*learned, res.Peak, res.Mean)
				assert.InDelta(t, 0.03, learned, 0.002, "learning found the true 3 %")
				assert.Equal(t, 0.5, other.Stats().Cost.CPUCores, "a supplier that does not govern memory learns nothing from it")
				assert.LessOrEqual(t, res.Peak, 0.82, "the host stays under target while the cost is learned")
				assert.GreaterOrEqual(t, res.Mean, 0.65, "and it costs little once learned")
				assert.Zero(t, res.Outstanding)
			})
		})
	}
}
