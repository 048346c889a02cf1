package queues_test

import (
	"fmt"

	"github.com/headroomhq/headroom/queues"
)

func ExampleRegistry_Lookup() {
	reg := queues.Default()
	if _, err := reg.Lookup("gpu-ml-inferense"); err != nil {
		fmt.Println(err)
	}
	q, _ := reg.Lookup("high-memory-analytics")
	fmt.Println(q.Name, q.Class)
	// Output:
	// queues: unknown task queue: "gpu-ml-inferense" (did you mean "gpu-ml-inference"?)
	// high-memory-analytics high-memory
}
