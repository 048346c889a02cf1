// Command mlpipeline runs the example ML pipeline — validate_data (CPU) →
// process_large_dataset (high-memory) → train_model (GPU) →
// generate_embeddings (GPU) → store_results (CPU) — across three worker pools
// tuned by headroom.
//
//	go -C examples run ./mlpipeline                 # embedded server, all pools, 20 pipelines
//	go -C examples run ./mlpipeline -address localhost:7233 worker gpu
//	go -C examples run ./mlpipeline -address localhost:7233 start
//
// On a host without an NVIDIA GPU the GPU pool runs against a simulated
// device, and says so.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/server/temporaltest"

	"github.com/headroomhq/headroom/examples/mlpipeline/pipeline"
	"github.com/headroomhq/headroom/queues"
	"github.com/headroomhq/headroom/scaling"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type flags struct {
	pipelines int
	cfg       pipeline.Config
	address   string
	namespace string
	metrics   string
	plain     bool
	listen    string
}

func usage(fs *flag.FlagSet, w io.Writer) func() {
	return func() {
		fmt.Fprintf(w, "usage: mlpipeline [flags] [run | worker cpu|gpu|highmem | start | scaler | autoscale]\n\n")
		fmt.Fprintf(w, "  run (default)  embedded Temporal server (or -address), all three pools, the pipelines\n")
		fmt.Fprintf(w, "  worker POOL    one pool against -address (a separate process per pool)\n")
		fmt.Fprintf(w, "  start          start -pipelines pipelines on -address and wait for them\n")
		fmt.Fprintf(w, "  scaler         serve KEDA's external scaler for the three pools on -listen (deploy/ has the manifests)\n")
		fmt.Fprintf(w, "  autoscale      a burst of pipelines; worker processes per pool started and stopped from the scaler's numbers\n\nflags:\n")
		fs.PrintDefaults()
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// runContext is run with the context that ends workers (a signal, in main).
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mlpipeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = usage(fs, stderr)
	var f flags
	fs.IntVar(&f.pipelines, "pipelines", 20, "pipelines to run")
	fs.IntVar(&f.cfg.Rows, "rows", 5000, "records per pipeline (validate, train, embed)")
	fs.IntVar(&f.cfg.DatasetMB, "dataset-mb", 256, "in-memory dataset the high-memory stage allocates and processes, MiB")
	gpuMem := fs.Uint64("gpu-mem-mb", 3072, "GPU memory each GPU stage takes while it runs, MiB")
	fs.DurationVar(&f.cfg.LoadTime, "load-time", 2*time.Second, "time a GPU stage takes to load its model (GPU memory grows over it)")
	fs.IntVar(&f.cfg.Epochs, "epochs", 150, "training epochs per pipeline")
	fs.DurationVar(&f.cfg.GPUWait, "gpu-wait", 30*time.Second, "GPU stages fall back to CPU when no GPU worker starts them within this")
	fs.StringVar(&f.cfg.OutDir, "out", "", "directory for result files (default: a temporary directory)")
	fs.StringVar(&f.address, "address", "", "host:port of an existing Temporal server (default: start an embedded one)")
	fs.StringVar(&f.namespace, "namespace", "default", "namespace on -address")
	fs.StringVar(&f.metrics, "metrics", "", "serve the tuner's metrics in Prometheus format on this address, e.g. :9464")
	fs.BoolVar(&f.plain, "plain", false, "plain progress lines even on a terminal")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:6000", "address the scaler command serves KEDA's external scaler on")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	f.cfg.GPUMemMB = *gpuMem
	if err := f.validate(); err != nil {
		fmt.Fprintf(stderr, "mlpipeline: %v\n", err)
		return 2
	}
	mode, rest := "run", fs.Args()
	if len(rest) > 0 {
		mode, rest = rest[0], rest[1:]
	}
	var err error
	switch mode {
	case "run":
		err = runAll(ctx, f, rest, stdout)
	case "worker":
		err = runWorker(ctx, f, rest, stdout)
	case "start":
		err = runStart(ctx, f, rest, stdout)
	case "scaler":
		err = runScaler(ctx, f, rest, stdout)
	case "autoscale":
		err = runAutoscale(ctx, f, rest, stdout)
	default:
		err = fmt.Errorf("unknown command %q (want run, worker, start, scaler or autoscale)", mode)
		fmt.Fprintf(stderr, "mlpipeline: %v\n", err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "mlpipeline: %v\n", err)
		return 1
	}
	return 0
}

func (f *flags) validate() error {
	switch {
	case f.pipelines < 1:
		return fmt.Errorf("-pipelines %d: must be at least 1", f.pipelines)
	case f.cfg.Rows < 1:
		return fmt.Errorf("-rows %d: must be at least 1", f.cfg.Rows)
	case f.cfg.DatasetMB < 1:
		return fmt.Errorf("-dataset-mb %d: must be at least 1", f.cfg.DatasetMB)
	case f.cfg.GPUMemMB < 1:
		return fmt.Errorf("-gpu-mem-mb %d: must be at least 1", f.cfg.GPUMemMB)
	case f.cfg.LoadTime < 0:
		return fmt.Errorf("-load-time %v: must not be negative", f.cfg.LoadTime)
	case f.cfg.Epochs < 1:
		return fmt.Errorf("-epochs %d: must be at least 1", f.cfg.Epochs)
	case f.cfg.GPUWait <= 0:
		return fmt.Errorf("-gpu-wait %v: must be positive", f.cfg.GPUWait)
	}
	if f.cfg.OutDir == "" {
		dir, err := os.MkdirTemp("", "mlpipeline-")
		if err != nil {
			return err
		}
		f.cfg.OutDir = dir
	}
	return nil
}

func sdkLogger() log.Logger {
	return log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
}

// embeddedAddr and embeddedNS are the embedded server's frontend and
// namespace, once connect started it.
var embeddedAddr, embeddedNS string

// connect returns a client for -address, or starts an embedded server.
func connect(ctx context.Context, f flags, out io.Writer) (client.Client, func(), error) {
	if f.address != "" {
		if _, _, err := net.SplitHostPort(f.address); err != nil {
			return nil, nil, fmt.Errorf("-address %q: want host:port", f.address)
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := client.DialContext(dctx, client.Options{HostPort: f.address, Namespace: f.namespace, Logger: sdkLogger(),
			WorkerHeartbeatInterval: heartbeatEvery})
		if err != nil {
			return nil, nil, fmt.Errorf("cannot reach a Temporal server at %s: %v", f.address, rootCause(err))
		}
		fmt.Fprintf(out, "server: %s (namespace %s)\n", f.address, f.namespace)
		return c, c.Close, nil
	}
	srv, err := startEmbedded()
	if err != nil {
		return nil, nil, fmt.Errorf("embedded Temporal server: %v", err)
	}
	c := srv.NewClientWithOptions(client.Options{Logger: sdkLogger(), WorkerHeartbeatInterval: heartbeatEvery})
	embeddedAddr, embeddedNS = srv.GetFrontendHostPort(), srv.GetDefaultNamespace()
	fmt.Fprintf(out, "server: embedded Temporal at %s (namespace %s)\n", srv.GetFrontendHostPort(), srv.GetDefaultNamespace())
	return c, srv.Stop, nil
}

func startEmbedded() (srv *temporaltest.TestServer, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	return temporaltest.NewServer(), nil
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// meterProvider serves metrics on addr when set.
func meterProvider(addr string, out io.Writer) (metric.MeterProvider, func(), error) {
	if addr == "" {
		return nil, func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("-metrics %s: %v", addr, rootCause(err))
	}
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	fmt.Fprintf(out, "metrics: http://%s/metrics\n", ln.Addr())
	return mp, func() {
		hs.Close()
		mp.Shutdown(context.Background())
	}, nil
}

// buildID names this binary in metrics: its VCS revision, else "dev".
func buildID() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return s.Value[:12]
			}
		}
	}
	return "dev"
}

func setup(ctx context.Context, f flags, out io.Writer, qs []queues.Queue) (client.Client, *pipeline.Env, func(), error) {
	mp, stopMetrics, err := meterProvider(f.metrics, out)
	if err != nil {
		return nil, nil, nil, err
	}
	c, closeClient, err := connect(ctx, f, out)
	if err != nil {
		stopMetrics()
		return nil, nil, nil, err
	}
	// Every series names the build, and the queue where this process
	// serves one pool (a replica of a Deployment, as autoscalers see it).
	attrs := []attribute.KeyValue{attribute.String("build_id", buildID())}
	if len(qs) == 1 {
		attrs = append(attrs, attribute.String("task_queue", qs[0].Name))
	}
	env, err := pipeline.NewEnv(f.cfg, mp, sdkLogger(), attrs...)
	if err != nil {
		closeClient()
		stopMetrics()
		return nil, nil, nil, err
	}
	if env.Simulated {
		fmt.Fprintf(out, "gpu: no NVIDIA GPU found; the GPU pool runs against a SIMULATED 16 GiB device\n")
	} else if env.Activities.Loader != nil {
		fmt.Fprintf(out, "gpu: %s (NVML); GPU stages load their model with PyTorch on the device they were leased\n", env.GPUName)
	} else {
		fmt.Fprintf(out, "gpu: %s (NVML); no CUDA PyTorch for python3, so GPU stages compute without loading a model\n", env.GPUName)
	}
	return c, env, func() {
		env.Close()
		closeClient()
		stopMetrics()
	}, nil
}

func runAll(ctx context.Context, f flags, rest []string, out io.Writer) error {
	if len(rest) > 0 {
		return fmt.Errorf("run takes no arguments, got %q", rest)
	}
	return withPools(ctx, f, out, []queues.Queue{pipeline.CPUQueue, pipeline.HighMemQueue, pipeline.GPUQueue},
		func(c client.Client, env *pipeline.Env, pools []*pipeline.Pool) error {
			return drive(ctx, c, env, pools, f, out)
		})
}

// withPools opens the environment, starts a worker pool for each queue, runs
// body, then stops the pools; a slot left reserved after they stop is an
// error (the tuner's accounting must come back to zero).
func withPools(ctx context.Context, f flags, out io.Writer, qs []queues.Queue, body func(client.Client, *pipeline.Env, []*pipeline.Pool) error) error {
	c, env, cleanup, err := setup(ctx, f, out, qs)
	if err != nil {
		return err
	}
	defer cleanup()
	pools, err := env.StartPools(c, f.cfg, qs...)
	if err != nil {
		return err
	}
	err = body(c, env, pools)
	if n := pipeline.StopPools(pools); n != 0 {
		return fmt.Errorf("%d slots left reserved after the workers stopped", n)
	}
	return err
}

func runWorker(ctx context.Context, f flags, rest []string, out io.Writer) error {
	if f.address == "" {
		return errors.New("worker needs -address (the embedded server lives in the run command's process)")
	}
	if len(rest) != 1 {
		return errors.New("worker takes one pool: cpu, gpu or highmem")
	}
	q, ok := pipeline.PoolNames[rest[0]]
	if !ok {
		return fmt.Errorf("unknown pool %q (want cpu, gpu or highmem)", rest[0])
	}
	return withPools(ctx, f, out, []queues.Queue{q}, func(_ client.Client, env *pipeline.Env, pools []*pipeline.Pool) error {
		fmt.Fprintf(out, "worker: polling %s; Ctrl-C to stop\n", q.Name)
		if os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("POD_NAME") != "" {
			// In a pod: its deletion cost is its slots in use, so that a
			// scale-in removes idle replicas first.
			go func() {
				inUse := func() int {
					n := 0
					for _, p := range pools {
						a, _ := p.Tuner.Stats()
						n += a.Used
					}
					return n
				}
				if err := scaling.RunDeletionCost(ctx, scaling.DeletionCostOptions{InUse: inUse, Logger: sdkLogger()}); err != nil {
					fmt.Fprintf(out, "worker: no pod deletion cost: %v\n", err)
				}
			}()
		}
		t := newTable(out, f.plain, 0)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
				t.draw(env, pools, 0)
			}
		}
	})
}

func runStart(ctx context.Context, f flags, rest []string, out io.Writer) error {
	if f.address == "" {
		return errors.New("start needs -address")
	}
	if len(rest) > 0 {
		return fmt.Errorf("start takes no arguments, got %q", rest)
	}
	c, closeClient, err := connect(ctx, f, out)
	if err != nil {
		return err
	}
	defer closeClient()
	res, err := startAndWait(ctx, c, f, nil)
	if err != nil {
		return err
	}
	summary(out, res, f.pipelines)
	return nil
}

type result struct {
	stages []pipeline.Stage
	err    error
}

// startAndWait starts the pipelines and collects their results; progress is
// called after each one finishes.
func startAndWait(ctx context.Context, c client.Client, f flags, progress func(done int)) ([]result, error) {
	runs, err := pipeline.StartPipelines(ctx, c, f.cfg, f.pipelines, fmt.Sprintf("mlpipeline-%d", time.Now().UnixNano()))
	if err != nil {
		return nil, fmt.Errorf("start pipelines: %v", rootCause(err))
	}
	res := make([]result, len(runs))
	var mu sync.Mutex
	done := 0
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s []pipeline.Stage
			err := r.Get(ctx, &s)
			mu.Lock()
			res[i] = result{s, err}
			done++
			if progress != nil {
				progress(done)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return res, ctx.Err()
}

func drive(ctx context.Context, c client.Client, env *pipeline.Env, pools []*pipeline.Pool, f flags, out io.Writer) error {
	var done int
	var mu sync.Mutex
	t := newTable(out, f.plain, f.pipelines)
	stopDraw := make(chan struct{})
	drawn := make(chan struct{})
	go func() {
		defer close(drawn)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopDraw:
				mu.Lock()
				t.draw(env, pools, done)
				mu.Unlock()
				return
			case <-tick.C:
				mu.Lock()
				t.draw(env, pools, done)
				mu.Unlock()
			}
		}
	}()
	start := time.Now()
	res, err := startAndWait(ctx, c, f, func(n int) { mu.Lock(); done = n; mu.Unlock() })
	close(stopDraw)
	<-drawn
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%d pipelines in %v\n", f.pipelines, time.Since(start).Round(time.Millisecond))
	return summary(out, res, f.pipelines)
}

func summary(out io.Writer, res []result, n int) error {
	type agg struct {
		queues map[string]int
		total  time.Duration
		count  int
	}
	stages := map[string]*agg{}
	var order []string
	failed := 0
	for _, r := range res {
		if r.err != nil {
			failed++
			continue
		}
		for _, s := range r.stages {
			a := stages[s.Name]
			if a == nil {
				a = &agg{queues: map[string]int{}}
				stages[s.Name] = a
				order = append(order, s.Name)
			}
			a.queues[s.Queue]++
			a.total += s.Duration
			a.count++
		}
	}
	fmt.Fprintf(out, "\n%-22s %-40s %s\n", "stage", "ran on", "mean time")
	for _, name := range order {
		a := stages[name]
		var qs []string
		for q, k := range a.queues {
			qs = append(qs, fmt.Sprintf("%s ×%d", q, k))
		}
		sort.Strings(qs)
		fmt.Fprintf(out, "%-22s %-40s %v\n", name, strings.Join(qs, ", "), (a.total / time.Duration(a.count)).Round(time.Millisecond))
	}
	if failed > 0 {
		for _, r := range res {
			if r.err != nil {
				return fmt.Errorf("%d of %d pipelines failed; first: %v", failed, n, rootCause(r.err))
			}
		}
	}
	return nil
}
