package tuner_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

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
