package routing_test

import (
	"os/exec"
	"strings"
	"testing"
)

// Workflow code imports routing and queues; they must not pull in what only
// a worker needs (the tuner, NVML through cgo, gopsutil, OpenTelemetry): every
// package they depend on is one the SDK's workflow packages depend on, or
// routing and queues themselves.
func TestWorkflowSidePackagesStayLight(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	deps := func(pkgs ...string) map[string]bool {
		t.Helper()
		out, err := exec.Command(goTool, append([]string{"list", "-deps"}, pkgs...)...).Output()
		if err != nil {
			t.Fatalf("go list -deps %v: %v", pkgs, err)
		}
		m := map[string]bool{}
		for _, p := range strings.Fields(string(out)) {
			m[p] = true
		}
		return m
	}
	sdk := deps("go.temporal.io/sdk/workflow", "go.temporal.io/sdk/temporal")
	own := map[string]bool{"github.com/headroomhq/headroom/routing": true, "github.com/headroomhq/headroom/queues": true}
	var extra []string
	for p := range deps("github.com/headroomhq/headroom/routing", "github.com/headroomhq/headroom/queues") {
		if !sdk[p] && !own[p] {
			extra = append(extra, p)
		}
	}
	if len(extra) > 0 {
		t.Errorf("routing and queues depend on %d packages the SDK's workflow packages do not: %v\n"+
			"worker-only code belongs in package pool or tuner", len(extra), extra)
	}
}
