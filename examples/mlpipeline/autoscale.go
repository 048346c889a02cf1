package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/headroomhq/headroom/examples/mlpipeline/pipeline"
	"github.com/headroomhq/headroom/scaling"
)

// asMain makes a test binary run main instead of its tests: autoscale
// starts its workers as `os.Executable() … worker POOL`, which under `go
// test` is the test binary (TestMain honours it).
const asMain = "MLPIPELINE_AS_MAIN"

// scaledPool is one pool under the autoscale command: its recommendation
// and the worker processes started for it.
type scaledPool struct {
	name     string // cpu, gpu, highmem
	queue    string
	source   func(context.Context) (scaling.Signal, error)
	fleet    *scaling.FleetReader
	rec      *scaling.Recommender
	desired  int
	sig      scaling.Signal
	children []*child
	peak     int
	lastErr  string
}

type child struct {
	cmd  *exec.Cmd
	done chan error
}

// runAutoscale starts a burst of -pipelines pipelines and, as a dev-only
// stand-in for Kubernetes, starts and stops `worker POOL` processes from
// each pool's recommendation (the scaler's numbers: backlog and the
// workers' heartbeats), removing the replica with the fewest slots in use
// first, as the pods' deletion cost makes a ReplicaSet do.
func runAutoscale(ctx context.Context, f flags, rest []string, out io.Writer) error {
	if len(rest) > 0 {
		return fmt.Errorf("autoscale takes no arguments, got %q", rest)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	c, addr, ns, cleanup, err := dial(ctx, f, out)
	if err != nil {
		return err
	}
	defer cleanup()
	f.namespace = ns
	var pools []*scaledPool
	for name, q := range pipeline.PoolNames {
		signal, fleet, err := poolSignal(c, f.namespace, q.Name, time.Second)
		if err != nil {
			return err
		}
		pol := pipeline.ScalingPolicy(q)
		pol.ScaleDownWindow = 15 * time.Second // a demo's minutes are seconds
		rec, err := scaling.NewRecommender(pol)
		if err != nil {
			return err
		}
		pools = append(pools, &scaledPool{name: name, queue: q.Name, source: signal, fleet: fleet, rec: rec})
	}
	sort.Slice(pools, func(i, j int) bool { return pools[i].queue < pools[j].queue })
	args := []string{"-address", addr, "-namespace", f.namespace, "-plain",
		"-rows", strconv.Itoa(f.cfg.Rows), "-dataset-mb", strconv.Itoa(f.cfg.DatasetMB), "-gpu-mem-mb", strconv.FormatUint(f.cfg.GPUMemMB, 10),
		"-load-time", f.cfg.LoadTime.String(), "-epochs", strconv.Itoa(f.cfg.Epochs), "-gpu-wait", f.cfg.GPUWait.String(), "-out", f.cfg.OutDir}
	fmt.Fprintf(out, "autoscale: %d pipelines; worker processes started and stopped per pool from the recommendation (logs in %s)\n", f.pipelines, f.cfg.OutDir)

	var mu sync.Mutex
	finished, done := 0, make(chan struct{})
	var res []result
	var runErr error
	go func() {
		defer close(done)
		r, err := startAndWait(ctx, c, f, func(n int) { mu.Lock(); finished = n; mu.Unlock() })
		mu.Lock()
		res, runErr = r, err
		mu.Unlock()
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	start := time.Now()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-ctx.Done():
			running = false
		case <-tick.C:
		}
		var line []string
		for _, p := range pools {
			p.step(ctx, exe, args, f.cfg.OutDir, out)
			line = append(line, fmt.Sprintf("%s %d/%d (backlog %d, in use %d)", p.name, p.desired, len(p.children), p.sig.Backlog, p.sig.InUse))
		}
		mu.Lock()
		n := finished
		mu.Unlock()
		fmt.Fprintf(out, "%5.0fs  %d/%d done  desired/running: %s\n", time.Since(start).Seconds(), n, f.pipelines, strings.Join(line, "  "))
	}
	var stopErr error
	for _, p := range pools {
		for len(p.children) > 0 {
			stopErr = errors.Join(stopErr, p.stop(len(p.children)-1, out))
		}
	}
	<-done
	for _, p := range pools {
		fmt.Fprintf(out, "%s: at most %d replicas\n", p.queue, p.peak)
	}
	if runErr != nil {
		return runErr
	}
	if err := summary(out, res, f.pipelines); err != nil {
		return err
	}
	return stopErr
}

// step reads the pool's signal, recommends, and starts or stops one
// worker process towards the recommendation.
func (p *scaledPool) step(ctx context.Context, exe string, args []string, dir string, out io.Writer) {
	p.reap(out)
	sig, err := p.source(ctx)
	if err != nil {
		if msg := err.Error(); msg != p.lastErr {
			fmt.Fprintf(out, "autoscale: %s: %v (nothing changes until a read succeeds)\n", p.name, err)
			p.lastErr = msg
		}
		return
	}
	p.lastErr = ""
	p.sig, p.desired = sig, p.rec.Recommend(time.Now(), sig)
	switch n := len(p.children); {
	case p.desired > n && ctx.Err() == nil:
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("worker-%s-%d.log", p.name, time.Now().UnixNano())))
		if err != nil {
			fmt.Fprintf(out, "autoscale: %v\n", err)
			return
		}
		cmd := exec.Command(exe, append(append([]string{}, args...), "worker", p.name)...)
		cmd.Env = append(os.Environ(), asMain+"=1")
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			fmt.Fprintf(out, "autoscale: starting a %s worker: %v\n", p.name, err)
			return
		}
		ch := &child{cmd: cmd, done: make(chan error, 1)}
		go func() { ch.done <- cmd.Wait(); logf.Close() }()
		p.children = append(p.children, ch)
		p.peak = max(p.peak, len(p.children))
		fmt.Fprintf(out, "autoscale: started a %s worker (pid %d): %d → %d\n", p.name, cmd.Process.Pid, n, n+1)
	case p.desired < n:
		p.stop(p.idlest(ctx), out)
	}
}

// idlest is the child with the fewest slots in use by its heartbeat (the
// newest among equals, as a ReplicaSet picks).
func (p *scaledPool) idlest(ctx context.Context) int {
	rep, _ := p.fleet.Read(ctx)
	inUse := map[string]int{}
	for _, w := range rep.Workers {
		inUse[w.ProcessID] = w.InUse
	}
	best := len(p.children) - 1
	for i := best; i >= 0; i-- {
		if inUse[strconv.Itoa(p.children[i].cmd.Process.Pid)] < inUse[strconv.Itoa(p.children[best].cmd.Process.Pid)] {
			best = i
		}
	}
	return best
}

// stop sends child i SIGTERM (it drains, reports and exits) and waits.
func (p *scaledPool) stop(i int, out io.Writer) error {
	ch := p.children[i]
	p.children = append(p.children[:i], p.children[i+1:]...)
	ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-ch.done:
		fmt.Fprintf(out, "autoscale: stopped a %s worker (pid %d): %s\n", p.name, ch.cmd.Process.Pid, exitOf(err))
		if err != nil {
			return fmt.Errorf("%s worker pid %d: %s", p.name, ch.cmd.Process.Pid, exitOf(err))
		}
	case <-time.After(2 * time.Minute):
		ch.cmd.Process.Kill()
		return fmt.Errorf("%s worker pid %d did not drain in 2 minutes; killed", p.name, ch.cmd.Process.Pid)
	}
	return nil
}

// reap drops children that exited by themselves.
func (p *scaledPool) reap(out io.Writer) {
	kept := p.children[:0]
	for _, ch := range p.children {
		select {
		case err := <-ch.done:
			fmt.Fprintf(out, "autoscale: a %s worker (pid %d) exited: %s\n", p.name, ch.cmd.Process.Pid, exitOf(err))
		default:
			kept = append(kept, ch)
		}
	}
	p.children = kept
}

func exitOf(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// dial is connect, also returning the server's address and namespace for
// child processes.
func dial(ctx context.Context, f flags, out io.Writer) (client.Client, string, string, func(), error) {
	c, cleanup, err := connect(ctx, f, out)
	if err != nil {
		return nil, "", "", nil, err
	}
	if f.address == "" {
		f.address, f.namespace = embeddedAddr, embeddedNS
	}
	return c, f.address, f.namespace, cleanup, nil
}
