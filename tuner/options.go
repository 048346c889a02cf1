package tuner

import (
	"errors"
	"fmt"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.temporal.io/sdk/log"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/resources"
)

// ErrInvalidOptions is wrapped by every error about bad options.
var ErrInvalidOptions = errors.New("tuner: invalid options")

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidOptions, field, fmt.Sprintf(format, args...))
}

// Resource is a set of resources a supplier's slots consume.
type Resource uint8

// Resources a supplier can be governed by.
const (
	CPU Resource = 1 << iota
	Memory
	GPUMemory
	// Encoder is a GPU's hardware video encoder (NVENC): sessions against
	// the driver's cap, and engine time (see Cost.EncoderSessions).
	Encoder
)

func (r Resource) String() string {
	var s string
	for _, x := range []struct {
		r    Resource
		name string
	}{{CPU, "cpu"}, {Memory, "memory"}, {GPUMemory, "gpu_memory"}, {Encoder, "encoder"}} {
		if r&x.r != 0 {
			if s != "" {
				s += "|"
			}
			s += x.name
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// Cost is what one slot of a class is expected to use once its task runs.
type Cost struct {
	CPUCores       float64
	MemoryBytes    uint64
	GPUMemoryBytes uint64
	// EncoderSessions is how many encoder sessions one slot opens (a
	// transcode with two outputs opens two). Zero with Encoder among the
	// Resources: 1. Encoder costs are declared, never learned.
	EncoderSessions int
	// EncoderLoad is the percent (0–100) of a device's encoder engine time
	// one slot keeps busy (a 1080p60 H.264 stream is about 15 % of one
	// NVENC); zero: only sessions are judged.
	EncoderLoad float64
}

// ControllerOptions configures [NewController].
type ControllerOptions struct {
	// Targets are fractions in (0, 1] of each resource's capacity; 0 leaves
	// the resource ungoverned. At least one must be set.
	TargetCPU       float64
	TargetMemory    float64
	TargetGPUMemory float64 // per device
	// TargetEncoder is the fraction of each device's encoder engine time
	// (its utilization) admitted to, and turns on encoder admission:
	// sessions are held to the driver's cap (EncoderSessions). Hosts with
	// no GPU or no encoder fall back to the classes' other resources, and
	// say so in the log.
	TargetEncoder float64
	// EncoderSessions is the most encoder sessions one device takes, where
	// known (GeForce drivers cap them; data-center boards do not). Zero:
	// no cap until NVENC refuses a session (its error 10, out of memory,
	// with VRAM free): the sessions then open become the cap of every
	// device of that model.
	EncoderSessions int

	// Source reads CPU and memory. Nil: resources.NewSystemSource.
	Source resources.Source
	// GPU reads GPU memory. Nil: gpu.NewNVMLSource when TargetGPUMemory is
	// set (an error if no GPU is found), else none.
	GPU gpu.Source
	// SampleInterval between readings. Zero: resources.DefaultInterval.
	SampleInterval time.Duration
	// StaleAfter: how old a reading may be before admission fails closed.
	// Zero: resources.DefaultStaleIntervals × SampleInterval.
	StaleAfter time.Duration

	// MeterProvider receives the metrics. Nil: none are recorded (the otel
	// global is not used).
	MeterProvider metric.MeterProvider
	// SDKSeries also records, for the suppliers of Tuners with a Name,
	// temporal_worker_task_slots_available (the slots that fit now:
	// Stats.Fit) and temporal_worker_task_slots_used under the SDK's names
	// and tags (worker_type, task_queue), so that dashboards and recording
	// rules written for the SDK's metrics see what fits. The SDK reports
	// MaxSlots − used under the same name for any custom supplier: where
	// its metrics reach the same backend, drop its
	// temporal_worker_task_slots_available for these workers there.
	SDKSeries bool
	// MetricAttributes are added to every series the controller records:
	// the worker's task queue and build ID, say, where a process serves one
	// pool (suppliers' names carry their queue where it serves several).
	MetricAttributes []attribute.KeyValue
	// Logger. Nil: slog.Default().
	Logger log.Logger
}

func (o *ControllerOptions) validate() error {
	for _, t := range []struct {
		name string
		v    float64
	}{{"TargetCPU", o.TargetCPU}, {"TargetMemory", o.TargetMemory}, {"TargetGPUMemory", o.TargetGPUMemory}, {"TargetEncoder", o.TargetEncoder}} {
		if math.IsNaN(t.v) || t.v < 0 || t.v > 1 {
			return invalid(t.name, "%v is not in (0, 1] (0 leaves it ungoverned)", t.v)
		}
	}
	if o.TargetCPU == 0 && o.TargetMemory == 0 && o.TargetGPUMemory == 0 && o.TargetEncoder == 0 {
		return invalid("TargetCPU/TargetMemory/TargetGPUMemory/TargetEncoder", "at least one target must be set")
	}
	if o.EncoderSessions < 0 {
		return invalid("EncoderSessions", "%d is negative (0: learned)", o.EncoderSessions)
	}
	if o.SampleInterval < 0 {
		return invalid("SampleInterval", "%v is negative", o.SampleInterval)
	}
	if o.StaleAfter < 0 {
		return invalid("StaleAfter", "%v is negative", o.StaleAfter)
	}
	return nil
}

// SlotSupplierOptions configures one [SlotSupplier].
type SlotSupplierOptions struct {
	// Name labels the supplier in metrics and logs ("activity",
	// "gpu-ml-inference"); unique per controller. Zero: "slots".
	Name string
	// MinSlots are admitted without looking at resources.
	MinSlots int
	// MaxSlots is the most slots ever issued at once; must be ≥ 1 and ≥ MinSlots.
	MaxSlots int
	// RampThrottle is the least time between two admissions above MinSlots.
	RampThrottle time.Duration
	// Resources this class consumes; admission checks those the controller
	// has a target for (at least one must be). Zero: CPU|Memory.
	Resources Resource
	// Cost is the declared cost of one slot (the prior): what its task uses
	// at most. Until the readings confirm it, a slot is charged twice this,
	// so that a cost declared half the truth does not overshoot; then what
	// the readings show. A zero field is learned from the readings alone,
	// and the supplier probes meanwhile: it issues 2 slots, and 2 more for
	// each slot seen through its whole life, until the readings show where
	// the footprint stops growing.
	Cost Cost
	// CostFloor is the least a slot is ever charged. Zero: no floor.
	CostFloor Cost
	// TrustCost skips probing: slots are admitted against Cost (or what has
	// been learned) from the first. Set it when Cost is measured, not
	// guessed, and a fast start matters more than a first overshoot.
	TrustCost bool
}

func (o *SlotSupplierOptions) normalize() error {
	if o.MinSlots < 0 {
		return invalid("MinSlots", "%d is negative", o.MinSlots)
	}
	if o.MaxSlots < 1 {
		return invalid("MaxSlots", "%d must be at least 1", o.MaxSlots)
	}
	if o.MinSlots > o.MaxSlots {
		return invalid("MinSlots", "%d is above MaxSlots %d", o.MinSlots, o.MaxSlots)
	}
	if o.RampThrottle < 0 {
		return invalid("RampThrottle", "%v is negative", o.RampThrottle)
	}
	if o.Resources&^(CPU|Memory|GPUMemory|Encoder) != 0 {
		return invalid("Resources", "unknown bits %b", o.Resources)
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"Cost.CPUCores", o.Cost.CPUCores}, {"CostFloor.CPUCores", o.CostFloor.CPUCores}} {
		if math.IsNaN(c.v) || math.IsInf(c.v, 0) || c.v < 0 {
			return invalid(c.name, "%v must be a non-negative number", c.v)
		}
	}
	if o.Cost.EncoderSessions < 0 {
		return invalid("Cost.EncoderSessions", "%d is negative", o.Cost.EncoderSessions)
	}
	if l := o.Cost.EncoderLoad; math.IsNaN(l) || l < 0 || l > 100 {
		return invalid("Cost.EncoderLoad", "%v is not a percent in [0, 100]", l)
	}
	if o.Resources == 0 {
		o.Resources = CPU | Memory
	}
	if (o.Cost.EncoderSessions > 0 || o.Cost.EncoderLoad > 0) && o.Resources&Encoder == 0 {
		return invalid("Resources", "an encoder cost is set but Encoder is not among the Resources (%v)", o.Resources)
	}
	if o.Resources&Encoder != 0 && o.Cost.EncoderSessions == 0 {
		o.Cost.EncoderSessions = 1
	}
	if (o.Cost.GPUMemoryBytes > 0 || o.CostFloor.GPUMemoryBytes > 0) && o.Resources&GPUMemory == 0 {
		return invalid("Resources", "a GPU memory cost is set but GPUMemory is not among the Resources (%v)", o.Resources)
	}
	if o.Name == "" {
		o.Name = "slots"
	}
	return nil
}

// DefaultWorkflowSlotSupplierOptions matches the SDK's workflow defaults:
// workflow tasks are short and light, so there is no ramp. Nexus slots
// default to these too.
func DefaultWorkflowSlotSupplierOptions() SlotSupplierOptions {
	return SlotSupplierOptions{Name: "workflow", MinSlots: 5, MaxSlots: 1000, Resources: CPU | Memory}
}

// DefaultActivitySlotSupplierOptions matches the SDK's activity defaults,
// except MaxSlots (1,000 rather than 10,000: a bound users can see in the
// slots-available metric). Local-activity and session slots default to
// these too.
func DefaultActivitySlotSupplierOptions() SlotSupplierOptions {
	return SlotSupplierOptions{Name: "activity", MinSlots: 1, MaxSlots: 1000, RampThrottle: 50 * time.Millisecond, Resources: CPU | Memory}
}
