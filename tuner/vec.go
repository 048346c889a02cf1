package tuner

// res indexes the resources a budget is kept for: Resource bit i is res i.
type res uint8

const (
	resCPU res = iota
	resMem
	resGPU
	numRes
)

var resNames = [numRes]string{"cpu", "memory", "gpu_memory"}

// vec is a quantity per resource: cores, bytes, bytes (per device for GPU).
type vec [numRes]float64

func vecOf(c Cost) vec {
	return vec{c.CPUCores, float64(c.MemoryBytes), float64(c.GPUMemoryBytes)}
}

func (v vec) cost() Cost {
	return Cost{CPUCores: v[resCPU], MemoryBytes: uint64(v[resMem]), GPUMemoryBytes: uint64(v[resGPU])}
}

// has reports whether the set includes resource r.
func (r Resource) has(i res) bool { return r&(1<<i) != 0 }
