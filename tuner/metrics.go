package tuner

import (
	"context"
	"errors"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/semconv/v1.40.0/hwconv"
)

// Metric names. All are asynchronous (observed at collection), so the slot
// hot path pays nothing for them.
const (
	MetricUsage          = "headroom.resource.usage"    // gauge, fraction; attrs resource, device
	MetricTarget         = "headroom.resource.target"   // gauge, fraction; attr resource
	MetricSlotsIssued    = "headroom.slots.issued"      // gauge; attr supplier
	MetricSlotsUsed      = "headroom.slots.used"        // gauge; attr supplier
	MetricSlotsAvailable = "headroom.slots.available"   // gauge: slots that fit now under the targets (Stats.Fit); attr supplier
	MetricUtilization    = "headroom.slots.utilization" // gauge: used ÷ (used + available); attr supplier
	MetricSlotsGranted   = "headroom.slots.granted"     // counter; attr supplier
	MetricSlotsRefused   = "headroom.slots.refused"     // counter; attrs supplier, reason
	MetricSlotCost       = "headroom.slot.cost"         // gauge, charge per slot (cores or bytes); attrs supplier, resource
	MetricSettleTime     = "headroom.slot.settle_time"  // gauge, seconds, learned; attr supplier
	MetricSensorFailures = "headroom.sensor.failures"   // counter of transitions into unusable readings
	// Per device with an encoder, where encoders are governed: sessions
	// open (read) and the cap per device where known (declared or learned).
	MetricEncoderSessions     = "headroom.encoder.sessions"      // gauge; attr device
	MetricEncoderSessionLimit = "headroom.encoder.session_limit" // gauge; attr device
	// MetricDeviceSlotsAvailable is Stats.Fit per device for classes
	// charged to devices: what each GPU would take.
	MetricDeviceSlotsAvailable = "headroom.device.slots.available" // gauge; attrs supplier, device
	// Under the SDK's names, with ControllerOptions.SDKSeries; attrs
	// worker_type, task_queue.
	MetricSDKSlotsAvailable = "temporal_worker_task_slots_available"
	MetricSDKSlotsUsed      = "temporal_worker_task_slots_used"
)

// Per device, in the OpenTelemetry hardware conventions (semconv v1.40.0):
// hw.gpu.memory.usage, .limit, .utilization; hw.gpu.utilization with
// hw.gpu.task encoder; hw.status (ok, degraded while its clocks slow down
// for heat or power, failed while unhealthy); hw.errors (critical Xids,
// error.type xid); hw.temperature of the GPU's sensor (hw.parent the GPU).
// Every series also carries ControllerOptions.MetricAttributes.

type metrics struct{ reg metric.Registration }

func (m *metrics) close() error {
	if m == nil || m.reg == nil {
		return nil
	}
	return m.reg.Unregister()
}

type instruments struct {
	usage, target, cost, settle, util metric.Float64ObservableGauge
	issued, used, avail               metric.Int64ObservableGauge
	granted, refused, sensor          metric.Int64ObservableCounter
	gpuUsage, gpuLimit, status        metric.Int64ObservableUpDownCounter
	gpuUtil, taskUtil                 metric.Float64ObservableGauge
	temp, sessions, sessionLimit      metric.Int64ObservableGauge
	devAvail, sdkAvail, sdkUsed       metric.Int64ObservableGauge
	hwErrors                          metric.Int64ObservableCounter
}

func newMetrics(c *Controller, mp metric.MeterProvider) (*metrics, error) {
	meter := mp.Meter("github.com/headroomhq/headroom/tuner")
	var in instruments
	var errs []error
	f := func(dst *metric.Float64ObservableGauge, name, unit, desc string) {
		g, err := meter.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		*dst = g
		errs = append(errs, err)
	}
	i := func(dst *metric.Int64ObservableGauge, name, desc string) {
		g, err := meter.Int64ObservableGauge(name, metric.WithDescription(desc))
		*dst = g
		errs = append(errs, err)
	}
	n := func(dst *metric.Int64ObservableCounter, name, desc string) {
		g, err := meter.Int64ObservableCounter(name, metric.WithDescription(desc))
		*dst = g
		errs = append(errs, err)
	}
	f(&in.usage, MetricUsage, "", "Resource usage as a fraction of capacity")
	f(&in.target, MetricTarget, "", "Admission target as a fraction of capacity")
	f(&in.cost, MetricSlotCost, "", "What one slot is charged (cores or bytes)")
	f(&in.settle, MetricSettleTime, "s", "How long a used slot's footprint takes to grow, as learned (0: not yet)")
	i(&in.issued, MetricSlotsIssued, "Slots issued and not yet released")
	i(&in.used, MetricSlotsUsed, "Issued slots running a task")
	i(&in.avail, MetricSlotsAvailable, "Slots that fit now under the targets, within MaxSlots")
	f(&in.util, MetricUtilization, "", "Slots used as a fraction of used plus available")
	n(&in.granted, MetricSlotsGranted, "Slots granted")
	n(&in.refused, MetricSlotsRefused, "Reservation attempts refused, by reason")
	n(&in.sensor, MetricSensorFailures, "Transitions into unusable readings")
	ud := func(dst *metric.Int64ObservableUpDownCounter, name, unit, desc string) {
		g, err := meter.Int64ObservableUpDownCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		*dst = g
		errs = append(errs, err)
	}
	ud(&in.gpuUsage, hwconv.GpuMemoryUsage{}.Name(), hwconv.GpuMemoryUsage{}.Unit(), hwconv.GpuMemoryUsage{}.Description())
	ud(&in.gpuLimit, hwconv.GpuMemoryLimit{}.Name(), hwconv.GpuMemoryLimit{}.Unit(), hwconv.GpuMemoryLimit{}.Description())
	ud(&in.status, hwconv.Status{}.Name(), hwconv.Status{}.Unit(), hwconv.Status{}.Description())
	f(&in.gpuUtil, hwconv.GpuMemoryUtilization{}.Name(), hwconv.GpuMemoryUtilization{}.Unit(), hwconv.GpuMemoryUtilization{}.Description())
	f(&in.taskUtil, hwconv.GpuUtilization{}.Name(), hwconv.GpuUtilization{}.Unit(), hwconv.GpuUtilization{}.Description())
	ig := func(dst *metric.Int64ObservableGauge, name, unit, desc string) {
		g, err := meter.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		*dst = g
		errs = append(errs, err)
	}
	ig(&in.temp, hwconv.Temperature{}.Name(), hwconv.Temperature{}.Unit(), hwconv.Temperature{}.Description())
	ig(&in.sessions, MetricEncoderSessions, "{session}", "Encoder sessions open on the device, every process's")
	ig(&in.sessionLimit, MetricEncoderSessionLimit, "{session}", "Most encoder sessions the device takes, where known")
	i(&in.devAvail, MetricDeviceSlotsAvailable, "Slots that fit now on each device, within what the host and MaxSlots allow")
	i(&in.sdkAvail, MetricSDKSlotsAvailable, "Task slots that fit now under headroom's targets (the SDK's name)")
	i(&in.sdkUsed, MetricSDKSlotsUsed, "Task slots in use (the SDK's name)")
	hwe, err := meter.Int64ObservableCounter(hwconv.Errors{}.Name(), metric.WithUnit(hwconv.Errors{}.Unit()), metric.WithDescription(hwconv.Errors{}.Description()))
	in.hwErrors = hwe
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		c.observe(o, &in)
		return nil
	}, in.usage, in.target, in.cost, in.settle, in.util, in.issued, in.used, in.avail, in.granted, in.refused, in.sensor,
		in.gpuUsage, in.gpuLimit, in.status, in.gpuUtil, in.taskUtil, in.temp, in.sessions, in.sessionLimit, in.hwErrors,
		in.devAvail, in.sdkAvail, in.sdkUsed)
	if err != nil {
		return nil, err
	}
	return &metrics{reg: reg}, nil
}

// observe reports the metrics: readings from the snapshot, counters copied
// under the lock and observed outside it.
func (c *Controller) observe(o metric.Observer, in *instruments) {
	snap := c.monitor.Snapshot()
	// Everything the controller holds, copied in one lock section; the
	// snapshot's readings need none.
	type row struct {
		name              string
		need              Resource
		issued, used, fit int
		granted           uint64
		refused           [numReasons]uint64
		charge            vec
		settle            float64
		sdk               sdkTags
		perDevice         []int
	}
	c.mu.Lock()
	c.apply(snap)
	limits := map[string]float64{}
	if c.targetEnc > 0 {
		for i, u := range c.devUUIDs {
			if l := c.sessionCap(i); l > 0 {
				limits[u] = l
			}
		}
	}
	rows := make([]row, 0, len(c.classes))
	for _, k := range c.classes {
		rows = append(rows, row{k.name, k.need, k.issued, k.used, c.fit(k), k.perm.carved, k.refused, k.charge, k.settle.Seconds(), k.sdk, c.fitPerDevice(k)})
	}
	uuids := slices.Clone(c.devUUIDs)
	failures := c.sensorErr
	c.mu.Unlock()
	with := func(kv ...attribute.KeyValue) metric.ObserveOption {
		return metric.WithAttributes(append(kv, c.attrs...)...)
	}
	rattr := func(r string) metric.ObserveOption { return with(attribute.String("resource", r)) }
	if !snap.UsageAt.IsZero() {
		if c.target[resCPU] > 0 {
			o.ObserveFloat64(in.usage, snap.Usage.CPU, rattr("cpu"))
		}
		if c.target[resMem] > 0 {
			o.ObserveFloat64(in.usage, snap.Usage.Memory, rattr("memory"))
		}
	}
	for _, d := range snap.GPUs {
		o.ObserveFloat64(in.usage, d.Used(), with(attribute.String("resource", "gpu_memory"), attribute.String("device", d.UUID)))
		id, name := semconv.HwID(d.UUID), semconv.HwName(d.Name)
		hw := with(id, name, semconv.HwVendor("NVIDIA"))
		o.ObserveInt64(in.gpuUsage, int64(d.UsedBytes), hw)
		o.ObserveInt64(in.gpuLimit, int64(d.TotalBytes), hw)
		o.ObserveFloat64(in.gpuUtil, d.Used(), hw)
		state := semconv.HwStateOk
		switch {
		case d.Unhealthy != "":
			state = semconv.HwStateFailed
		case d.Slowdown != "":
			state = semconv.HwStateDegraded
		}
		o.ObserveInt64(in.status, 1, with(id, name, semconv.HwTypeGpu, state))
		o.ObserveInt64(in.hwErrors, int64(d.Xids), with(id, name, semconv.HwTypeGpu, semconv.ErrorTypeKey.String("xid")))
		if d.TemperatureC > 0 {
			o.ObserveInt64(in.temp, int64(d.TemperatureC), with(semconv.HwID(d.UUID+"/temperature"), semconv.HwParent(d.UUID),
				semconv.HwTypeTemperature, semconv.HwSensorLocation("GPU")))
		}
		if e := d.Encoder; e.Known {
			if e.Utilization >= 0 {
				o.ObserveFloat64(in.taskUtil, float64(e.Utilization)/100, with(id, name, semconv.HwVendor("NVIDIA"), hwconv.GpuUtilization{}.AttrGpuTask(hwconv.GpuTaskEncoder)))
			}
			if c.targetEnc > 0 {
				dev := with(attribute.String("device", d.UUID))
				o.ObserveInt64(in.sessions, int64(e.Sessions), dev)
				if l, ok := limits[d.UUID]; ok {
					o.ObserveInt64(in.sessionLimit, int64(l), dev)
				}
			}
		}
	}
	for r := res(0); r < numRes; r++ {
		if c.target[r] > 0 {
			o.ObserveFloat64(in.target, c.target[r], rattr(resNames[r]))
		}
	}
	o.ObserveInt64(in.sensor, int64(failures), with())
	for _, r := range rows {
		sup := with(attribute.String("supplier", r.name))
		o.ObserveInt64(in.issued, int64(r.issued), sup)
		o.ObserveInt64(in.used, int64(r.used), sup)
		o.ObserveInt64(in.avail, int64(r.fit), sup)
		for i, n := range r.perDevice {
			o.ObserveInt64(in.devAvail, int64(n), with(attribute.String("supplier", r.name), attribute.String("device", uuids[i])))
		}
		if c.sdkSeries && r.sdk.taskQueue != "" {
			tags := with(attribute.String("worker_type", r.sdk.workerType), attribute.String("task_queue", r.sdk.taskQueue))
			o.ObserveInt64(in.sdkAvail, int64(r.fit), tags)
			o.ObserveInt64(in.sdkUsed, int64(r.used), tags)
		}
		if r.used+r.fit > 0 {
			o.ObserveFloat64(in.util, float64(r.used)/float64(r.used+r.fit), sup)
		}
		o.ObserveInt64(in.granted, int64(r.granted), sup)
		o.ObserveFloat64(in.settle, r.settle, sup)
		for reason := Reason(1); reason < numReasons; reason++ {
			o.ObserveInt64(in.refused, int64(r.refused[reason]), with(attribute.String("supplier", r.name), attribute.String("reason", reason.String())))
		}
		for x := res(0); x < numRes; x++ {
			if r.need.has(x) {
				o.ObserveFloat64(in.cost, r.charge[x], with(attribute.String("supplier", r.name), attribute.String("resource", resNames[x])))
			}
		}
	}
}
