package tuner_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/tuner"
)

func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	c, _ := fixedController(t, resources.Usage{Memory: 0.9, MemoryLimitBytes: GiB, CPU: 0.3, CPUCores: 2},
		tuner.ControllerOptions{TargetMemory: 0.8, TargetCPU: 0.9, MeterProvider: mp})
	sup, err := tuner.NewSlotSupplier(c, tuner.SlotSupplierOptions{Name: "gpu-pool", MinSlots: 1, MaxSlots: 4, Resources: tuner.Memory, Cost: tuner.Cost{MemoryBytes: 1 << 20}})
	require.NoError(t, err)
	p := sup.TryReserveSlot(info)
	require.NotNil(t, p)
	require.Nil(t, sup.TryReserveSlot(info)) // memory over target

	got := collect(t, reader)
	assert.Equal(t, 0.9, got[tuner.MetricUsage]["resource=memory"])
	assert.Equal(t, 0.3, got[tuner.MetricUsage]["resource=cpu"])
	assert.Equal(t, 0.8, got[tuner.MetricTarget]["resource=memory"])
	assert.Equal(t, 1.0, got[tuner.MetricSlotsIssued]["supplier=gpu-pool"])
	assert.Equal(t, 0.0, got[tuner.MetricSlotsAvailable]["supplier=gpu-pool"], "memory over target: nothing more fits, whatever MaxSlots says")
	assert.Equal(t, 1.0, got[tuner.MetricSlotsRefused]["reason=memory,supplier=gpu-pool"])
	assert.Equal(t, 1.0, got[tuner.MetricSlotsGranted]["supplier=gpu-pool"])
	assert.Equal(t, float64(2<<20), got[tuner.MetricSlotCost]["resource=memory,supplier=gpu-pool"])
	assert.Equal(t, 0.0, got[tuner.MetricSettleTime]["supplier=gpu-pool"], "nothing learned yet")
	assert.Contains(t, got, tuner.MetricSensorFailures)
	sup.ReleaseSlot(testutil.ReleaseInfo{P: p})
}

// collect reads every metric: name → encoded attributes → value.
func collect(t *testing.T, reader *sdkmetric.ManualReader) map[string]map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	got := map[string]map[string]float64{} // metric -> attrs -> value
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			vals := map[string]float64{}
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					vals[p.Attributes.Encoded(attribute.DefaultEncoder())] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					vals[p.Attributes.Encoded(attribute.DefaultEncoder())] = float64(p.Value)
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					vals[p.Attributes.Encoded(attribute.DefaultEncoder())] = float64(p.Value)
				}
			}
			got[m.Name] = vals
		}
	}
	return got
}

// Each GPU is reported in the OpenTelemetry hardware conventions, with the
// controller's MetricAttributes on every series: memory, encoder load,
// temperature, critical Xids; hw.state failed while unhealthy, degraded
// while its clocks slow down for heat; encoder sessions and the cap.
func TestGPUMetricsInHardwareConventions(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	enc := gpu.Encoder{Known: true, Sessions: 2, Utilization: 35, Capacity: [3]int{-1, -1, -1}}
	g := testutil.NewGPU(gpu.Device{UUID: "GPU-a", Name: "L4", UsedBytes: 8 * GiB, TotalBytes: 80 * GiB, TemperatureC: 71, Encoder: enc},
		gpu.Device{UUID: "GPU-b", Name: "L4", UsedBytes: 0, TotalBytes: 80 * GiB, Unhealthy: "Xid 79", Xids: 2},
		gpu.Device{UUID: "GPU-c", Name: "L4", UsedBytes: 0, TotalBytes: 80 * GiB, Slowdown: "hw thermal"})
	fixedController(t, resources.Usage{Memory: 0.2, MemoryLimitBytes: GiB}, tuner.ControllerOptions{TargetGPUMemory: 0.9, TargetEncoder: 0.9,
		EncoderSessions: 5, GPU: g, MeterProvider: mp,
		MetricAttributes: []attribute.KeyValue{attribute.String("task_queue", "video"), attribute.String("build_id", "b1")}})
	got := collect(t, reader)
	tags := "build_id=b1,"
	a := tags + "hw.id=GPU-a,hw.name=L4,hw.vendor=NVIDIA,task_queue=video"
	assert.Equal(t, float64(8*GiB), got["hw.gpu.memory.usage"][a], "%v", got["hw.gpu.memory.usage"])
	assert.Equal(t, float64(80*GiB), got["hw.gpu.memory.limit"][a])
	assert.InDelta(t, 0.1, got["hw.gpu.memory.utilization"][a], 1e-9)
	assert.InDelta(t, 0.35, got["hw.gpu.utilization"][tags+"hw.gpu.task=encoder,hw.id=GPU-a,hw.name=L4,hw.vendor=NVIDIA,task_queue=video"], 1e-9,
		"%v", got["hw.gpu.utilization"])
	assert.Equal(t, 71.0, got["hw.temperature"][tags+"hw.id=GPU-a/temperature,hw.parent=GPU-a,hw.sensor_location=GPU,hw.type=temperature,task_queue=video"],
		"%v", got["hw.temperature"])
	st := got["hw.status"]
	assert.Equal(t, 1.0, st[tags+"hw.id=GPU-a,hw.name=L4,hw.state=ok,hw.type=gpu,task_queue=video"], "%v", st)
	assert.Equal(t, 1.0, st[tags+"hw.id=GPU-b,hw.name=L4,hw.state=failed,hw.type=gpu,task_queue=video"], "%v", st)
	assert.Equal(t, 1.0, st[tags+"hw.id=GPU-c,hw.name=L4,hw.state=degraded,hw.type=gpu,task_queue=video"], "%v", st)
	assert.Equal(t, 2.0, got["hw.errors"][tags+"error.type=xid,hw.id=GPU-b,hw.name=L4,hw.type=gpu,task_queue=video"], "%v", got["hw.errors"])
	assert.Equal(t, 2.0, got[tuner.MetricEncoderSessions][tags+"device=GPU-a,task_queue=video"], "%v", got[tuner.MetricEncoderSessions])
	assert.Equal(t, 5.0, got[tuner.MetricEncoderSessionLimit][tags+"device=GPU-a,task_queue=video"])
	assert.Equal(t, 0.9, got[tuner.MetricTarget][tags+"resource=gpu_memory,task_queue=video"], "%v", got[tuner.MetricTarget])
}

// With SDKSeries, a Tuner's suppliers are also reported under the SDK's
// slot metrics, by worker_type and task_queue, with what fits now (not
// MaxSlots − used); a GPU class's capacity is also given per device.
func TestSDKNamedSeriesAndCapacityPerDevice(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	g := testutil.NewGPU(gpu.Device{UUID: "GPU-a", Name: "H100", UsedBytes: 8 * GiB, TotalBytes: 80 * GiB},
		gpu.Device{UUID: "GPU-b", Name: "H100", UsedBytes: 40 * GiB, TotalBytes: 80 * GiB})
	c, _ := fixedController(t, resources.Usage{Memory: 0.2, MemoryLimitBytes: 64 * GiB}, tuner.ControllerOptions{TargetGPUMemory: 0.9,
		TargetMemory: 0.9, GPU: g, MeterProvider: mp, SDKSeries: true})
	tu, err := tuner.New(tuner.Options{Name: "gpu-ml-inference", Shared: c, Activity: tuner.SlotSupplierOptions{Name: "gpu", MaxSlots: 20,
		Resources: tuner.GPUMemory, Cost: tuner.Cost{GPUMemoryBytes: 10 * GiB}, TrustCost: true}})
	require.NoError(t, err)
	defer tu.Close()
	p := tu.GetActivityTaskSlotSupplier().TryReserveSlot(info)
	require.NotNil(t, p)
	tu.GetActivityTaskSlotSupplier().MarkSlotUsed(testutil.MarkUsedInfo{P: p})
	defer tu.GetActivityTaskSlotSupplier().ReleaseSlot(testutil.ReleaseInfo{P: p})

	got := collect(t, reader)
	act := "task_queue=gpu-ml-inference,worker_type=ActivityWorker"
	// A 10 GiB cost is charged 20 GiB until confirmed. GPU-a: 72 − 8 GiB,
	// one slot on it: 2 more; GPU-b: 72 − 40: 1 more.
	assert.Equal(t, 3.0, got[tuner.MetricSDKSlotsAvailable][act], "%v", got[tuner.MetricSDKSlotsAvailable])
	assert.Equal(t, 1.0, got[tuner.MetricSDKSlotsUsed][act])
	assert.Contains(t, got[tuner.MetricSDKSlotsAvailable], "task_queue=gpu-ml-inference,worker_type=WorkflowWorker")
	assert.Equal(t, got[tuner.MetricSlotsAvailable]["supplier=gpu-ml-inference/gpu"], got[tuner.MetricSDKSlotsAvailable][act], "the same number")
	dev := got[tuner.MetricDeviceSlotsAvailable]
	assert.Equal(t, 2.0, dev["device=GPU-a,supplier=gpu-ml-inference/gpu"], "%v", dev)
	assert.Equal(t, 1.0, dev["device=GPU-b,supplier=gpu-ml-inference/gpu"])
}
