package resources

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// childResult is what the child process measured inside its own cgroups.
type childResult struct {
	LimitBytes            uint64
	AllocDelta, FileDelta int64
	IdleCPU, BusyCPU      float64
	Cores                 float64
	Err                   string
}

// v1Mount returns the mount point of the cgroup v1 hierarchy carrying
// controller, from /proc/self/mountinfo.
func v1Mount(controller string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, x := range fields {
			if x == "-" && i+3 < len(fields) && fields[i+1] == "cgroup" {
				for _, opt := range strings.Split(fields[i+3], ",") {
					if opt == controller {
						return fields[4]
					}
				}
			}
		}
	}
	return ""
}

// TestRealSourceInOwnCgroup runs the measurements in a child process that
// has joined fresh cgroups (memory limited to 1 GiB, CPU quota one core), so
// that nothing else on the host moves the readings: the real source, real
// cgroup v1 files, exact numbers.
func TestRealSourceInOwnCgroup(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	mounts := map[string]string{}
	for _, c := range []string{"memory", "cpu", "cpuacct"} {
		if mounts[c] = v1Mount(c); mounts[c] == "" {
			t.Skipf("no cgroup v1 %s hierarchy on this host", c)
		}
	}
	name := fmt.Sprintf("headroom-test-%d", os.Getpid())
	var dirs []string
	for _, m := range []string{mounts["memory"], mounts["cpu"], mounts["cpuacct"]} {
		d := filepath.Join(m, name)
		if contains(dirs, d) {
			continue // cpu and cpuacct share a hierarchy on some hosts
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Skipf("cannot create cgroup %s: %v", d, err)
		}
		dirs = append(dirs, d)
	}
	defer func() {
		for _, d := range dirs {
			os.Remove(d)
		}
	}()
	mem := filepath.Join(mounts["memory"], name)
	cpu := filepath.Join(mounts["cpu"], name)
	require.NoError(t, os.WriteFile(filepath.Join(mem, "memory.limit_in_bytes"), []byte("1073741824"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(cpu, "cpu.cfs_period_us"), []byte("100000"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(cpu, "cpu.cfs_quota_us"), []byte("100000"), 0o644))

	cmd := exec.Command(os.Args[0], "-test.run=^TestCgroupChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "HEADROOM_CGROUP_CHILD="+strings.Join(dirs, string(os.PathListSeparator)), "HEADROOM_CGROUP_TMP="+t.TempDir())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child: %s", out)
	i := strings.Index(string(out), "RESULT ")
	require.GreaterOrEqual(t, i, 0, "child output: %s", out)
	var res childResult
	require.NoError(t, json.Unmarshal([]byte(strings.SplitN(string(out[i+7:]), "\n", 2)[0]), &res))
	require.Empty(t, res.Err)
	t.Logf("in own cgroup: limit %d MiB, +%d MiB after a 256 MiB allocation, %+d MiB after a 256 MiB file; CPU idle %.2f busy %.2f of %.1f cores",
		res.LimitBytes>>20, res.AllocDelta>>20, res.FileDelta>>20, res.IdleCPU, res.BusyCPU, res.Cores)
	assert.Equal(t, uint64(1<<30), res.LimitBytes, "the cgroup's limit is the capacity")
	assert.InDelta(t, 256, float64(res.AllocDelta>>20), 32, "working set rises by the allocation")
	assert.Less(t, res.FileDelta, int64(32<<20), "page cache of a written file is not working set")
	assert.Equal(t, 1.0, res.Cores, "capacity is the one-core quota")
	// The idle window still carries the child's runtime (GC after the
	// allocation): 0.20 was seen with other tests busy on both cores.
	assert.Less(t, res.IdleCPU, 0.35, "idle child")
	assert.Greater(t, res.BusyCPU-res.IdleCPU, 0.3, "a busy loop on one core shows (at least partly, on a loaded host)")
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// TestCgroupChild is the child half of TestRealSourceInOwnCgroup.
func TestCgroupChild(t *testing.T) {
	dirs := os.Getenv("HEADROOM_CGROUP_CHILD")
	if dirs == "" {
		t.Skip("helper process only")
	}
	res := measureInCgroup(strings.Split(dirs, string(os.PathListSeparator)), os.Getenv("HEADROOM_CGROUP_TMP"))
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
}

func measureInCgroup(dirs []string, tmp string) (res childResult) {
	fail := func(err error) childResult { res.Err = err.Error(); return res }
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fail(err)
		}
	}
	src, err := NewSystemSource(SystemSourceOptions{})
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	before, err := src.Read(ctx)
	if err != nil {
		return fail(err)
	}
	res.LimitBytes, res.Cores = before.MemoryLimitBytes, before.CPUCores
	const size = 256 << 20
	buf, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return fail(err)
	}
	for j := 0; j < len(buf); j += 4096 {
		buf[j] = 1
	}
	after, err := src.Read(ctx)
	if err != nil {
		return fail(err)
	}
	res.AllocDelta = int64(after.MemoryBytes) - int64(before.MemoryBytes)
	syscall.Munmap(buf)

	before, err = src.Read(ctx)
	if err != nil {
		return fail(err)
	}
	f, err := os.Create(filepath.Join(tmp, "file"))
	if err != nil {
		return fail(err)
	}
	chunk := make([]byte, 4<<20)
	for w := 0; w < size; w += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			return fail(err)
		}
	}
	f.Sync()
	f.Close()
	after, err = src.Read(ctx)
	if err != nil {
		return fail(err)
	}
	res.FileDelta = int64(after.MemoryBytes) - int64(before.MemoryBytes)

	// A host busy with other work may give the child only part of a core:
	// keep the clearest of a few windows.
	for attempt := 0; attempt < 5 && res.BusyCPU-res.IdleCPU <= 0.5; attempt++ {
		time.Sleep(MinCPUWindow + 20*time.Millisecond)
		idle, err := src.Read(ctx)
		if err != nil {
			return fail(err)
		}
		busy, err := readWhileBusy(ctx, src)
		if err != nil {
			return fail(err)
		}
		if busy.CPU-idle.CPU > res.BusyCPU-res.IdleCPU {
			res.IdleCPU, res.BusyCPU = idle.CPU, busy.CPU
		}
	}
	return res
}
