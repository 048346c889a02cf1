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

// Each GPU is reported in the OpenTelemetry hardware conventions; an
// unhealthy one has hw.state failed.
func TestGPUMetricsInHardwareConventions(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	g := testutil.NewGPU(gpu.Device{UUID: "GPU-a", Name: "H100", UsedBytes: 8 * GiB, TotalBytes: 80 * GiB},
		gpu.Device{UUID: "GPU-b", Name: "H100", UsedBytes: 0, TotalBytes: 80 * GiB, Unhealthy: "Xid 79"})
	fixedController(t, resources.Usage{Memory: 0.2, MemoryLimitBytes: GiB}, tuner.ControllerOptions{TargetGPUMemory: 0.9, GPU: g, MeterProvider: mp})
	got := collect(t, reader)
	a := "hw.id=GPU-a,hw.name=H100,hw.vendor=NVIDIA"
	assert.Equal(t, float64(8*GiB), got["hw.gpu.memory.usage"][a])
	assert.Equal(t, float64(80*GiB), got["hw.gpu.memory.limit"][a])
	assert.InDelta(t, 0.1, got["hw.gpu.memory.utilization"][a], 1e-9)
	assert.Equal(t, 1.0, got["hw.status"]["hw.id=GPU-a,hw.name=H100,hw.state=ok,hw.type=gpu"])
	assert.Equal(t, 1.0, got["hw.status"]["hw.id=GPU-b,hw.name=H100,hw.state=failed,hw.type=gpu"], "%v", got["hw.status"])
}
