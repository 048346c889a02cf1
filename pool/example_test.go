package pool_test

import (
	"fmt"

	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
)

func ExamplePresetFor() {
	for _, c := range []queues.Class{queues.GPU, queues.HighMemory, queues.CPU} {
		p := pool.PresetFor(c)
		fmt.Printf("%s: up to %d slots of %v, workflows %v\n", c, p.Activity.MaxSlots, p.Activity.Resources, p.Workflows)
	}
	// Output:
	// gpu: up to 4 slots of memory|gpu_memory, workflows false
	// high-memory: up to 16 slots of memory, workflows false
	// cpu: up to 200 slots of cpu|memory, workflows true
}
