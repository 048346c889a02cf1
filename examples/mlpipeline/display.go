package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/headroomhq/headroom/examples/mlpipeline/pipeline"
	"github.com/headroomhq/headroom/tuner"
)

// table draws the live per-pool view: redrawn in place on a terminal, one
// compact line per second otherwise.
type table struct {
	out   io.Writer
	tty   bool
	lines int
	total int
	start time.Time
}

func newTable(out io.Writer, plain bool, total int) *table {
	tty := false
	if f, ok := out.(*os.File); ok && !plain {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &table{out: out, tty: tty, total: total, start: time.Now()}
}

func pct(v float64) string { return fmt.Sprintf("%3.0f%%", 100*v) }

func refusals(st tuner.Stats) string {
	var parts []string
	for r, n := range st.Refused {
		parts = append(parts, fmt.Sprintf("%s:%d", r, n))
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func (t *table) draw(env *pipeline.Env, pools []*pipeline.Pool, done int) {
	snap := env.Controller.Snapshot()
	u := snap.Usage
	gpuUse := "n/a"
	for _, d := range snap.GPUs {
		gpuUse = fmt.Sprintf("%s of %d GiB", pct(d.Used()), d.TotalBytes>>30)
	}
	res := fmt.Sprintf("cpu %s/90%%  mem %s/85%%  gpu-mem %s/90%%", pct(u.CPU), pct(u.Memory), gpuUse)
	if !t.tty {
		var ps []string
		for _, p := range pools {
			st, _ := p.Tuner.Stats()
			ps = append(ps, fmt.Sprintf("%s %d/%d refused[%s]", p.Queue.Name, st.Used, st.MaxSlots, refusals(st)))
		}
		fmt.Fprintf(t.out, "[%5.1fs] %s | %s | pipelines %d/%d\n", time.Since(t.start).Seconds(), res, strings.Join(ps, " | "), done, t.total)
		return
	}
	var b strings.Builder
	if t.lines > 0 {
		fmt.Fprintf(&b, "\033[%dA", t.lines)
	}
	row := func(format string, a ...any) { fmt.Fprintf(&b, "\033[2K"+format+"\n", a...) }
	row("%-24s %-11s %-8s %s", "pool", "slots used", "issued", "refusals")
	for _, p := range pools {
		st, _ := p.Tuner.Stats()
		row("%-24s %4d / %-4d %-8d %s", p.Queue.Name, st.Used, st.MaxSlots, st.Issued, refusals(st))
	}
	row("%s", res)
	if t.total > 0 {
		const width = 30
		filled := width * done / t.total
		row("pipelines [%s%s] %d/%d  %v", strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, t.total, time.Since(t.start).Round(time.Second))
	}
	t.lines = len(pools) + 2
	if t.total > 0 {
		t.lines++
	}
	fmt.Fprint(t.out, b.String())
}
