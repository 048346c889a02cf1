package tuner_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/headroomhq/headroom/internal/sim"
	"github.com/headroomhq/headroom/tuner"
)

// An underestimated prior is corrected upward from the readings; the cost of
// a supplier that does not govern a resource is not touched by it.
func TestLearnsUnderestimatedCost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := slowAlloc(2)
		sc.Duration = 40 * time.Second
		// Tasks really take 3 % of memory; the prior says 1 %.
		c := newController(t, sc.Host, tuner.ControllerOptions{TargetMemory: 0.8})
		defer c.Close()
		prior := uint64(64*GiB) / 100
		sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{MinSlots: 1, MaxSlots: 1000, RampThrottle: 50 * time.Millisecond,
			Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: prior}, SettleTime: 2 * time.Second})
		require.NoError(t, err)
		other, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{MaxSlots: 10, Resources: tuner.CPU, Cost: tuner.Cost{CPUCores: 0.5}})
		require.NoError(t, err)
		res := sim.Run(sup, sc)
		learned := sup.Stats().Cost.MemoryBytes
		t.Logf("learned %.2f%% of memory per slot (prior 1%%, true 3%%); peak %.3f", 100*float64(learned)/float64(64*GiB), res.Peak)
		assert.Greater(t, float64(learned), 2.5*float64(prior), "learning raised the cost toward the true 3 %")
		assert.Equal(t, 0.5, other.Stats().Cost.CPUCores, "a supplier that does not govern memory learns nothing from it")
	})
}
