package tuner

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names. All are asynchronous (observed at collection), so the slot
// hot path pays nothing for them.
const (
	MetricUsage          = "headroom.resource.usage"   // gauge, fraction; attrs resource, device
	MetricTarget         = "headroom.resource.target"  // gauge, fraction; attr resource
	MetricSlotsIssued    = "headroom.slots.issued"     // gauge; attr supplier
	MetricSlotsUsed      = "headroom.slots.used"       // gauge; attr supplier
	MetricSlotsAvailable = "headroom.slots.available"  // gauge: MaxSlots − issued; attr supplier
	MetricSlotsGranted   = "headroom.slots.granted"    // counter; attr supplier
	MetricSlotsRefused   = "headroom.slots.refused"    // counter; attrs supplier, reason
	MetricSlotCost       = "headroom.slot.cost"        // gauge, learned cost (cores or bytes); attrs supplier, resource
	MetricSettleTime     = "headroom.slot.settle_time" // gauge, seconds, learned; attr supplier
	// MetricSettleOnset is how much of the settle time shows nothing (a
	// model load's imports; 0: the footprint grows from the start); gauge,
	// seconds, learned; attr supplier.
	MetricSettleOnset = "headroom.slot.settle_onset"
	// MetricPromptRelease is 1 where readings have confirmed that released
	// footprint is gone by the next reading, so releases are credited at
	// once; attrs supplier, resource (memory, gpu_memory).
	MetricPromptRelease  = "headroom.slot.prompt_release"
	MetricSensorFailures = "headroom.sensor.failures" // counter of transitions into unusable readings
)

type metrics struct {
	reg metric.Registration
}

func (m *metrics) close() error {
	if m == nil || m.reg == nil {
		return nil
	}
	return m.reg.Unregister()
}

func newMetrics(c *Controller, mp metric.MeterProvider) (*metrics, error) {
	meter := mp.Meter("github.com/headroomhq/headroom/tuner")
	usage, err := meter.Float64ObservableGauge(MetricUsage, metric.WithDescription("Resource usage as a fraction of capacity"))
	if err != nil {
		return nil, err
	}
	target, err := meter.Float64ObservableGauge(MetricTarget, metric.WithDescription("Admission target as a fraction of capacity"))
	if err != nil {
		return nil, err
	}
	issued, err := meter.Int64ObservableGauge(MetricSlotsIssued, metric.WithDescription("Slots issued and not yet released"))
	if err != nil {
		return nil, err
	}
	used, err := meter.Int64ObservableGauge(MetricSlotsUsed, metric.WithDescription("Issued slots running a task"))
	if err != nil {
		return nil, err
	}
	avail, err := meter.Int64ObservableGauge(MetricSlotsAvailable, metric.WithDescription("MaxSlots minus issued"))
	if err != nil {
		return nil, err
	}
	granted, err := meter.Int64ObservableCounter(MetricSlotsGranted, metric.WithDescription("Slots granted"))
	if err != nil {
		return nil, err
	}
	refused, err := meter.Int64ObservableCounter(MetricSlotsRefused, metric.WithDescription("Reservation attempts refused, by reason"))
	if err != nil {
		return nil, err
	}
	cost, err := meter.Float64ObservableGauge(MetricSlotCost, metric.WithDescription("Expected cost of one slot (cores or bytes)"))
	if err != nil {
		return nil, err
	}
	settle, err := meter.Float64ObservableGauge(MetricSettleTime, metric.WithUnit("s"), metric.WithDescription("How long a used slot's footprint takes to show in the readings (learned)"))
	if err != nil {
		return nil, err
	}
	onset, err := meter.Float64ObservableGauge(MetricSettleOnset, metric.WithUnit("s"), metric.WithDescription("How long of the settle time a used slot's footprint shows nothing (learned)"))
	if err != nil {
		return nil, err
	}
	prompt, err := meter.Int64ObservableGauge(MetricPromptRelease, metric.WithDescription("1 if releases give their footprint back at once (confirmed by readings)"))
	if err != nil {
		return nil, err
	}
	sensor, err := meter.Int64ObservableCounter(MetricSensorFailures, metric.WithDescription("Transitions into unusable readings"))
	if err != nil {
		return nil, err
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		snap := c.monitor.Snapshot()
		res := func(r string) metric.ObserveOption {
			return metric.WithAttributes(attribute.String("resource", r))
		}
		if !snap.UsageAt.IsZero() {
			if c.targetCPU > 0 {
				o.ObserveFloat64(usage, snap.Usage.CPU, res("cpu"))
			}
			if c.targetMem > 0 {
				o.ObserveFloat64(usage, snap.Usage.Memory, res("memory"))
			}
		}
		for _, d := range snap.GPUs {
			o.ObserveFloat64(usage, d.Used(), metric.WithAttributes(attribute.String("resource", "gpu_memory"), attribute.String("device", d.UUID)))
		}
		for _, t := range []struct {
			name string
			v    float64
		}{{"cpu", c.targetCPU}, {"memory", c.targetMem}, {"gpu_memory", c.targetGPU}} {
			if t.v > 0 {
				o.ObserveFloat64(target, t.v, res(t.name))
			}
		}
		c.mu.Lock()
		type row struct {
			name              string
			issued, used, max int
			est               costVec
			sup               *SlotSupplier
			granted           uint64
			refused           [numReasons]uint64
			settle            int64
			onset             float64
			promptMem         bool
			promptGPU         bool
		}
		rows := make([]row, 0, len(c.suppliers))
		for _, s := range c.suppliers {
			rows = append(rows, row{s.name, s.issued, s.used, s.opts.MaxSlots, s.est, s, s.granted(), s.refused,
				s.settle, s.onset, s.promptMem.prompt(), s.promptGPU.prompt()})
		}
		failures := c.sensorErr
		c.mu.Unlock()
		o.ObserveInt64(sensor, int64(failures))
		for _, r := range rows {
			sup := metric.WithAttributes(attribute.String("supplier", r.name))
			o.ObserveInt64(issued, int64(r.issued), sup)
			o.ObserveInt64(used, int64(r.used), sup)
			o.ObserveInt64(avail, int64(r.max-r.issued), sup)
			o.ObserveInt64(granted, int64(r.granted), sup)
			for reason := Reason(1); reason < numReasons; reason++ {
				o.ObserveInt64(refused, int64(r.refused[reason]),
					metric.WithAttributes(attribute.String("supplier", r.name), attribute.String("reason", reason.String())))
			}
			for _, x := range []struct {
				name string
				v    float64
				on   bool
			}{{"cpu", r.est.cpu, r.sup.need&CPU != 0}, {"memory", r.est.mem, r.sup.need&Memory != 0}, {"gpu_memory", r.est.gpu, r.sup.need&GPUMemory != 0}} {
				if x.on {
					o.ObserveFloat64(cost, x.v, metric.WithAttributes(attribute.String("supplier", r.name), attribute.String("resource", x.name)))
				}
			}
			o.ObserveFloat64(settle, float64(r.settle)/1e9, sup)
			o.ObserveFloat64(onset, r.onset*float64(r.settle)/1e9, sup)
			for _, x := range []struct {
				name   string
				prompt bool
				on     bool
			}{{"memory", r.promptMem, r.sup.need&Memory != 0}, {"gpu_memory", r.promptGPU, r.sup.need&GPUMemory != 0}} {
				if x.on {
					v := int64(0)
					if x.prompt {
						v = 1
					}
					o.ObserveInt64(prompt, v, metric.WithAttributes(attribute.String("supplier", r.name), attribute.String("resource", x.name)))
				}
			}
		}
		return nil
	}, usage, target, issued, used, avail, granted, refused, cost, settle, onset, prompt, sensor)
	if err != nil {
		return nil, err
	}
	return &metrics{reg: reg}, nil
}
