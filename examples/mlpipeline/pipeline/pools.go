package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/headroomhq/headroom/gpu"
	"github.com/headroomhq/headroom/pool"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/routing"
	"github.com/headroomhq/headroom/scaling"
	"github.com/headroomhq/headroom/tuner"
)

// Config sizes the pipeline and its pools.
type Config struct {
	Rows      int
	DatasetMB int
	GPUMemMB  uint64
	GPUWait   time.Duration // GPU stages fall back to CPU after this
	LoadTime  time.Duration // how long a GPU stage takes to load its model
	Epochs    int           // training epochs
	OutDir    string
}

// Input returns the pipeline input for pipeline id.
func (c Config) Input(id int) Input {
	return Input{ID: id, Rows: c.Rows, DatasetMB: c.DatasetMB, GPUMemMB: c.GPUMemMB, LoadTime: c.LoadTime, Epochs: max(c.Epochs, 1), OutDir: c.OutDir}
}

// Env is everything a process running pools needs.
type Env struct {
	Registry   *queues.Registry
	Controller *tuner.Controller
	Activities *Activities
	Table      *routing.Table
	Simulated  bool    // GPU memory comes from SimGPU, not NVML
	GPUName    string  // device name shown to the user
	Sim        *SimGPU // the simulated device, if Simulated
}

// NewEnv builds the controller (real CPU/memory readings; NVML when a GPU is
// present, else a simulated 16 GiB GPU) and the route table. GPU stages load
// into the simulated GPU, or on a real one through PyTorch in a subprocess
// when python3 has CUDA PyTorch; else they only compute. attrs go on every
// metric series.
func NewEnv(cfg Config, mp metric.MeterProvider, logger log.Logger, attrs ...attribute.KeyValue) (*Env, error) {
	e := &Env{Registry: queues.Default(), Activities: &Activities{}}
	var src gpu.Source
	nv, err := gpu.NewNVMLSource(gpu.NVMLOptions{})
	switch {
	case err == nil:
		devs, derr := nv.Devices(context.Background())
		if derr == nil && len(devs) > 0 {
			e.GPUName = devs[0].Name
		}
		src = nv
		tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
		if TorchAvailable(tctx) {
			e.Activities.Loader = TorchLoader{} // real device memory, on the leased device
		}
		tcancel()
	case errors.Is(err, gpu.ErrNoGPU):
		sim := NewSimGPU(16 << 30)
		e.Activities.Loader, e.Sim, e.Simulated, e.GPUName = sim, sim, true, "simulated GPU (16 GiB)"
		src = sim
	default:
		return nil, err
	}
	e.Controller, err = tuner.NewController(tuner.ControllerOptions{
		TargetCPU: 0.9, TargetMemory: 0.85, TargetGPUMemory: 0.9, GPU: src, MeterProvider: mp, Logger: logger,
		MetricAttributes: attrs, SDKSeries: true, // the example exports no SDK metrics of its own
	})
	if err != nil {
		if nv != nil {
			nv.Close()
		}
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Controller.WaitReady(ctx); err != nil {
		e.Controller.Close()
		return nil, err
	}
	e.Table, err = Routes(e.Registry, e.Activities, cfg.GPUWait)
	if err != nil {
		e.Controller.Close()
		return nil, err
	}
	return e, nil
}

// Close closes the controller (and NVML with it).
func (e *Env) Close() error { return e.Controller.Close() }

// Pool is one worker pool.
type Pool struct {
	Queue  queues.Queue
	Worker worker.Worker
	Tuner  *tuner.Tuner
}

// ScalingPolicy bounds a pool's replicas (the scaler command's, and
// deploy/scaledobjects.yaml's). PerReplica, for scaling from zero, is what
// one replica of the preset holds at most; the CPU pool, where workflows
// run, keeps one replica.
func ScalingPolicy(q queues.Queue) scaling.Policy {
	per := pool.PresetFor(q.Class).Activity.MaxSlots
	switch q.Class {
	case queues.CPU:
		return scaling.Policy{Min: 1, Max: 10, PerReplica: per}
	case queues.GPU:
		return scaling.Policy{Max: 8, PerReplica: per}
	default:
		return scaling.Policy{Max: 4, PerReplica: per}
	}
}

// Pools of the pipeline, by name as used on the command line.
var PoolNames = map[string]queues.Queue{"cpu": CPUQueue, "gpu": GPUQueue, "highmem": HighMemQueue}

func (e *Env) preset(q queues.Queue, cfg Config) pool.Preset {
	p := pool.PresetFor(q.Class)
	switch q.Class {
	case queues.GPU:
		p.Activity.Cost = tuner.Cost{GPUMemoryBytes: cfg.GPUMemMB << 20, MemoryBytes: 64 << 20}
	case queues.HighMemory:
		p.Activity.Cost = tuner.Cost{MemoryBytes: uint64(cfg.DatasetMB) << 20}
	}
	return p
}

// StartPools starts a worker for each queue in qs. With all three pools in
// one process it first checks that every routed activity is registered on
// its queue.
func (e *Env) StartPools(c client.Client, cfg Config, qs ...queues.Queue) ([]*Pool, error) {
	regs := routing.Registrations{}
	a := e.Activities
	acts := map[queues.Queue][]any{
		CPUQueue:     {a.ValidateData, a.StoreResults, a.TrainModel, a.GenerateEmbeddings}, // GPU stages' fallback
		HighMemQueue: {a.ProcessLargeDataset},
		GPUQueue:     {a.TrainModel, a.GenerateEmbeddings},
	}
	for _, q := range qs {
		regs.Add(q, acts[q]...)
	}
	if len(qs) == len(acts) {
		if err := e.Table.Check(regs); err != nil {
			return nil, err
		}
	}
	var pools []*Pool
	for _, q := range qs {
		w, t, err := pool.NewWorker(c, e.Registry, q, e.Controller, e.preset(q, cfg), worker.Options{})
		if err != nil {
			StopPools(pools)
			return nil, fmt.Errorf("pool %s: %w", q.Name, err)
		}
		for _, act := range acts[q] {
			w.RegisterActivity(act)
		}
		if q == CPUQueue {
			w.RegisterWorkflowWithOptions(Workflow(e.Table, a), workflow.RegisterOptions{Name: WorkflowName})
		}
		if err := w.Start(); err != nil {
			t.Close()
			StopPools(pools)
			return nil, fmt.Errorf("pool %s: %w", q.Name, err)
		}
		pools = append(pools, &Pool{Queue: q, Worker: w, Tuner: t})
	}
	return pools, nil
}

// StopPools stops every worker and reports slots left reserved (there must
// be none).
func StopPools(pools []*Pool) (outstanding int) {
	for _, p := range pools {
		p.Worker.Stop()
		a, w := p.Tuner.Stats()
		outstanding += a.Issued + w.Issued
		p.Tuner.Close()
	}
	return outstanding
}

// StartPipelines starts n pipelines on the CPU queue.
func StartPipelines(ctx context.Context, c client.Client, cfg Config, n int, prefix string) ([]client.WorkflowRun, error) {
	runs := make([]client.WorkflowRun, 0, n)
	for i := 0; i < n; i++ {
		r, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: fmt.Sprintf("%s-%d", prefix, i), TaskQueue: CPUQueue.Name,
		}, WorkflowName, cfg.Input(i))
		if err != nil {
			return runs, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}
