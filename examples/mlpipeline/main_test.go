package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/headroomhq/headroom/examples/internal/leaks"
	"github.com/headroomhq/headroom/examples/mlpipeline/pipeline"
	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/internal/testutil"
	"github.com/headroomhq/headroom/resources"
	"github.com/headroomhq/headroom/scaling"
	"github.com/headroomhq/headroom/scaling/keda"
	"github.com/headroomhq/headroom/tuner"
)

// Bad input ends in one clear line and a non-zero exit, never a stack trace.
func TestBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	unreachable := closed.Addr().String()
	closed.Close()

	for _, tt := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown flag", []string{"-frobnicate"}, 2, "flag provided but not defined: -frobnicate"},
		{"bad flag value", []string{"-pipelines", "lots"}, 2, `invalid value "lots" for flag -pipelines`},
		{"zero pipelines", []string{"-pipelines", "0"}, 2, "-pipelines 0: must be at least 1"},
		{"unknown command", []string{"fly"}, 2, `unknown command "fly"`},
		{"worker without address", []string{"worker", "gpu"}, 1, "worker needs -address"},
		{"unknown pool", []string{"-address", unreachable, "worker", "tpu"}, 1, `unknown pool "tpu"`},
		{"malformed address", []string{"-address", "nohostport", "start"}, 1, `-address "nohostport": want host:port`},
		{"unreachable address", []string{"-address", unreachable, "start"}, 1, "cannot reach a Temporal server at " + unreachable},
		{"metrics port in use", []string{"-metrics", busy.Addr().String()}, 1, "-metrics " + busy.Addr().String()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tt.args, &out, &errOut)
			assert.Equal(t, tt.code, code, errOut.String())
			assert.Contains(t, errOut.String(), tt.msg)
			assert.NotContains(t, errOut.String(), "goroutine ", "no stack trace")
		})
	}
}

// The Prometheus endpoint serves the series the Grafana dashboard queries.
func TestMetricsEndpoint(t *testing.T) {
	var out bytes.Buffer
	mp, stop, err := meterProvider("127.0.0.1:0", &out)
	require.NoError(t, err)
	defer stop()
	g := testutil.NewGPU(gpu.Device{UUID: "GPU-a", Name: "L4", UsedBytes: 1 << 30, TotalBytes: 24 << 30, TemperatureC: 60,
		Encoder: gpu.Encoder{Known: true, Sessions: 1, Utilization: 20}})
	ctrl, err := tuner.NewController(tuner.ControllerOptions{TargetMemory: 0.8, TargetCPU: 0.9, TargetGPUMemory: 0.9, TargetEncoder: 0.9,
		GPU: g, MeterProvider: mp, Logger: testutil.NopLogger, MetricAttributes: []attribute.KeyValue{attribute.String("task_queue", "gpu-ml-inference")},
		Source: testutil.NewSource(resources.Usage{Memory: 0.5, MemoryLimitBytes: 1 << 30, CPU: 0.1, CPUCores: 2})})
	require.NoError(t, err)
	defer ctrl.Close()
	require.NoError(t, ctrl.WaitReady(context.Background()))
	sup, err := tuner.NewSlotSupplier(ctrl, tuner.SlotSupplierOptions{Name: "cpu", MaxSlots: 2})
	require.NoError(t, err)
	_, err = tuner.NewSlotSupplier(ctrl, tuner.SlotSupplierOptions{Name: "gpu", MaxSlots: 2, Resources: tuner.GPUMemory, Cost: tuner.Cost{GPUMemoryBytes: 1 << 30}})
	require.NoError(t, err)
	// The scaler command's gauge, on the same provider as the dashboard expects.
	sc, err := keda.New(keda.Options{MeterProvider: mp, Pools: []keda.Pool{{TaskQueue: "gpu-ml-inference", Policy: pipeline.ScalingPolicy(pipeline.GPUQueue),
		Signal: func(context.Context) (scaling.Signal, error) { return scaling.Signal{Backlog: 3}, nil }}}})
	require.NoError(t, err)
	defer sc.Close()
	_, err = sc.GetMetrics(context.Background(), &pb.GetMetricsRequest{ScaledObjectRef: &pb.ScaledObjectRef{ScalerMetadata: map[string]string{"taskQueue": "gpu-ml-inference"}}})
	require.NoError(t, err)
	p := sup.TryReserveSlot(&testutil.ReservationInfo{})
	require.NotNil(t, p)
	defer sup.ReleaseSlot(testutil.ReleaseInfo{P: p})

	url := strings.TrimSpace(strings.TrimPrefix(out.String(), "metrics: "))
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, series := range []string{
		`headroom_resource_usage{`, `headroom_resource_target{`, `headroom_slots_used{`, `headroom_slots_issued{`,
		`headroom_slots_available{`, `headroom_slots_refused_total{`, `headroom_slot_cost{`, `headroom_slot_settle_time_seconds{`, `headroom_sensor_failures_total{`,
		`headroom_slots_granted_total{`, `headroom_encoder_sessions{`,
		// the OpenTelemetry hardware conventions, per device
		`hw_gpu_memory_usage_bytes{`, `hw_gpu_memory_limit_bytes{`, `hw_gpu_memory_utilization_ratio{`, `hw_gpu_utilization_ratio{`,
		`hw_status_ratio{`, `hw_errors_total{`, `hw_temperature_celsius{`,
	} {
		assert.Contains(t, string(body), series)
	}
	assert.Regexp(t, `hw_gpu_memory_usage_bytes\{[^}]*task_queue="gpu-ml-inference"`, string(body), "tagged with the worker's queue")
	dash, err := os.ReadFile("grafana-dashboard.json")
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`headroom_[a-z_]+`).FindAllString(string(dash), -1) {
		assert.Contains(t, string(body), m+"{", "dashboard queries %s, which the endpoint must serve", m)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" { // a worker process autoscale started
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	leaks.VerifyTestMain(m)
}
