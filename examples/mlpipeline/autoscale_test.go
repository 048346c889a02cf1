package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAutoscale runs the autoscale command on the embedded server: no
// worker runs at first; the recommendation starts worker processes for
// each pool as its queue fills (the GPU and high-memory pools from zero),
// the pipelines' GPU stages run on the GPU pool it started, and at the end
// every process it started drains and exits 0.
func TestAutoscale(t *testing.T) {
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code := runContext(ctx, []string{"-pipelines", "4", "-rows", "500", "-dataset-mb", "8", "-epochs", "5", "-load-time", "100ms",
		"-gpu-wait", "2m", "-plain", "autoscale"}, &out, &errOut)
	t.Log(out.String())
	require.Equal(t, 0, code, errOut.String())
	s := out.String()
	for _, pool := range []string{"cpu", "gpu", "highmem"} {
		assert.Regexp(t, "autoscale: started a "+pool+" worker \\(pid \\d+\\): 0 → 1", s, "the %s pool is started from the recommendation", pool)
	}
	started := len(regexp.MustCompile(`autoscale: started a`).FindAllString(s, -1))
	stopped := len(regexp.MustCompile(`autoscale: stopped a \S+ worker \(pid \d+\): exit 0`).FindAllString(s, -1))
	assert.Equal(t, started, stopped, "every worker started is stopped, and drains to exit 0")
	assert.NotContains(t, s, "exited:", "no worker died by itself")
	assert.Contains(t, s, "4/4 done")
	assert.Regexp(t, `train_model\s+gpu-ml-inference ×4`, s, "GPU stages ran on the GPU pool autoscale started, not on the CPU fallback")
	assert.True(t, strings.Contains(s, "gpu-ml-inference: at most"), s)
}
