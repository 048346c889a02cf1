package cgroups

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func detectTree(t *testing.T, name string) (*CGroups, error) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("testdata", name))
	require.NoError(t, err)
	return DetectRoot(root)
}

func TestTrees(t *testing.T) {
	const GiB = 1 << 30
	tests := []struct {
		tree       string
		version    int
		workingSet uint64
		limit      uint64
		usage      time.Duration
		quota      float64
		hasQuota   bool
	}{
		{tree: "v1", version: 1, workingSet: GiB - GiB/4, limit: 2 * GiB, usage: 1500 * time.Millisecond, quota: 1.5, hasQuota: true},
		{tree: "v2", version: 2, workingSet: 3 * GiB, limit: 8 * GiB, usage: 2500 * time.Millisecond, quota: 2, hasQuota: true},
		// Own cgroup unlimited; the smallest of the parent's max and high wins.
		{tree: "v2-nested", version: 2, workingSet: 1000000000, limit: 2 * GiB, usage: 42 * time.Microsecond, quota: 0.5, hasQuota: true},
		// This build machine: v1 memory nested and unlimited, cpu at the root, unified beside.
		{tree: "hybrid", version: 1, workingSet: 5000000, limit: 0, usage: 987654321000, hasQuota: false},
		// Process path outside the mount root: the mount point is the best visible dir.
		{tree: "v1-outside", version: 1, workingSet: 200, limit: 1000, usage: 5000, hasQuota: false},
	}
	for _, tt := range tests {
		t.Run(tt.tree, func(t *testing.T) {
			cg, err := detectTree(t, tt.tree)
			require.NoError(t, err)
			assert.Equal(t, tt.version, cg.Version())
			ws, limit, err := cg.Memory()
			require.NoError(t, err)
			assert.Equal(t, tt.workingSet, ws, "working set")
			assert.Equal(t, tt.limit, limit, "limit")
			usage, err := cg.CPUUsage()
			require.NoError(t, err)
			assert.Equal(t, tt.usage, usage, "cpu usage")
			q, ok, err := cg.CPUQuota()
			require.NoError(t, err)
			assert.Equal(t, tt.hasQuota, ok, "has quota")
			assert.InDelta(t, tt.quota, q, 1e-9, "quota")
		})
	}
}

func TestMissingFiles(t *testing.T) {
	cg, err := detectTree(t, "missing")
	require.NoError(t, err)
	_, _, err = cg.Memory()
	require.Error(t, err, "memory.stat is missing: a reading without it would count page cache as used")
	assert.Contains(t, err.Error(), "memory.stat")
	_, err = cg.CPUUsage()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cpu.stat")
}

func TestNoCgroup(t *testing.T) {
	_, err := detectTree(t, "none")
	assert.ErrorIs(t, err, ErrNoCgroup)
	_, err = DetectFrom("testdata/does-not-exist", "testdata/none/proc/self/mountinfo")
	assert.ErrorIs(t, err, ErrNoCgroup)
}

func TestDetectHost(t *testing.T) {
	cg, err := Detect()
	if errors.Is(err, ErrNoCgroup) {
		t.Skip("no cgroup on this host:", err)
	}
	require.NoError(t, err)
	ws, _, err := cg.Memory()
	require.NoError(t, err)
	assert.Positive(t, ws, "this process's cgroup holds at least this test binary")
	u1, err := cg.CPUUsage()
	require.NoError(t, err)
	deadline := time.Now().Add(20 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	u2, err := cg.CPUUsage()
	require.NoError(t, err)
	assert.Greater(t, u2, u1, "a busy loop must advance CPU usage")
}

func TestParseMountInfoEscapes(t *testing.T) {
	ms, err := parseMountInfo(strings.NewReader(
		`31 25 0:27 /a\040b /sys/fs/cgroup/x\134y rw - cgroup cgroup rw,cpu,cpuacct` + "\n" +
			"garbage line\n" +
			"40 30 0:37 / /sys/fs/cgroup/unified rw shared:1 - cgroup2 cgroup2 rw\n"))
	require.NoError(t, err)
	require.Len(t, ms, 2)
	assert.Equal(t, "/a b", ms[0].Root)
	assert.Equal(t, `/sys/fs/cgroup/x\y`, ms[0].MountPoint)
	assert.Equal(t, []string{"cpu", "cpuacct"}, ms[0].Controllers)
	assert.True(t, ms[1].V2)
}

func TestParseValues(t *testing.T) {
	for _, tt := range []struct {
		in    string
		cores float64
		ok    bool
		err   bool
	}{
		{"max 100000", 0, false, false},
		{"50000 100000\n", 0.5, true, false},
		{"150000", 1.5, true, false},
		{"", 0, false, true},
		{"x 100000", 0, false, true},
		{"100 0", 0, false, true},
		{"1 2 3", 0, false, true},
	} {
		c, ok, err := parseCPUMax("cpu.max", tt.in)
		assert.Equal(t, tt.err, err != nil, "%q", tt.in)
		assert.Equal(t, tt.ok, ok, "%q", tt.in)
		assert.InDelta(t, tt.cores, c, 1e-9, "%q", tt.in)
	}
	for _, tt := range []struct {
		in  string
		v   uint64
		err bool
	}{
		{"max\n", 0, false},
		{"9223372036854771712", 0, false},
		{"1024", 1024, false},
		{"-1", 0, true},
		{"", 0, true},
	} {
		v, err := parseLimit("memory.max", tt.in)
		assert.Equal(t, tt.err, err != nil, "%q", tt.in)
		assert.Equal(t, tt.v, v, "%q", tt.in)
	}
	kv := parseKeyed([]byte("a 1\nb notanumber\nc\n d 4\ninactive_file 7\n"))
	assert.Equal(t, map[string]uint64{"a": 1, "inactive_file": 7}, kv)
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add([]byte("31 25 0:27 /a\\040b /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n"))
	f.Add([]byte("29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"))
	f.Add([]byte(" - - - \n\\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ms, err := parseMountInfo(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, m := range ms {
			_ = resolve(m, "/x/y")
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add([]byte("4:memory:/process_api/s1\n0::/\n"))
	f.Add([]byte("1:name=systemd,cpu:/a:b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pcs, err := parseProcCgroup(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, pc := range pcs {
			d := resolve(mount{Root: "/", MountPoint: "/m"}, pc.Path)
			if !strings.HasPrefix(d, "/m") {
				t.Fatalf("resolved %q outside the mount: %q", pc.Path, d)
			}
		}
	})
}

func FuzzParseValues(f *testing.F) {
	f.Add("max 100000")
	f.Add("9223372036854771712")
	f.Add("usage_usec 5\ninactive_file 3")
	f.Fuzz(func(t *testing.T, s string) {
		if c, ok, err := parseCPUMax("cpu.max", s); err == nil && ok && !(c > 0) {
			t.Fatalf("quota %v from %q must be positive", c, s)
		}
		_, _ = parseLimit("memory.max", s)
		_ = parseKeyed([]byte(s))
	})
}

func TestOOMKills(t *testing.T) {
	for tree, want := range map[string]uint64{"v1": 5, "v2": 2} {
		cg, err := detectTree(t, tree)
		require.NoError(t, err)
		n, err := cg.OOMKills()
		require.NoError(t, err, tree)
		assert.Equal(t, want, n, tree)
	}
	cg, err := detectTree(t, "hybrid") // no memory.oom_control in the tree
	require.NoError(t, err)
	_, err = cg.OOMKills()
	assert.Error(t, err)
	if cg, err := Detect(); err == nil {
		if n, err := cg.OOMKills(); err == nil {
			t.Logf("this host's cgroup: %d OOM kills", n)
		}
	}
}

func TestHostOOMKills(t *testing.T) {
	if _, err := os.Stat("/proc/vmstat"); err != nil {
		t.Skip("no /proc/vmstat")
	}
	n, err := HostOOMKills()
	require.NoError(t, err, "kernels since 4.13 count oom_kill in /proc/vmstat")
	t.Logf("host: %d OOM kills", n)
}
