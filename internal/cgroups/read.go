// Reading a located hierarchy: memory working set and limit, CPU time
// and quota, and the parsers of the files they come from.

package cgroups

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// MemoryDir is the memory controller directory ("" if none).
func (c *CGroups) MemoryDir() string { return c.memory.path }

// Memory returns the working set (usage less inactive file cache) and the
// smallest limit visible up the hierarchy; limit 0 means unlimited.
func (c *CGroups) Memory() (workingSet, limit uint64, err error) {
	if !c.memory.ok() {
		return 0, 0, fmt.Errorf("%w: memory controller", ErrNoCgroup)
	}
	var usageFile, inactiveKey string
	if c.memory.v2 {
		usageFile, inactiveKey = "memory.current", "inactive_file"
	} else {
		usageFile, inactiveKey = "memory.usage_in_bytes", "total_inactive_file"
	}
	usage, err := readUint(filepath.Join(c.memory.path, usageFile))
	if err != nil {
		return 0, 0, err
	}
	stat, err := readKeyed(filepath.Join(c.memory.path, "memory.stat"))
	if err != nil {
		return 0, 0, err
	}
	inactive, ok := stat[inactiveKey]
	if !ok && !c.memory.v2 {
		inactive, ok = stat["inactive_file"] // v1 without hierarchy totals
	}
	if !ok {
		return 0, 0, fmt.Errorf("cgroups: %s has no %s", filepath.Join(c.memory.path, "memory.stat"), inactiveKey)
	}
	workingSet = usage
	if inactive < usage {
		workingSet = usage - inactive
	} else {
		workingSet = 0
	}
	limit, err = c.memoryLimit(stat)
	return workingSet, limit, err
}

func (c *CGroups) memoryLimit(stat map[string]uint64) (uint64, error) {
	var limit uint64
	lower := func(v uint64) {
		if v != 0 && (limit == 0 || v < limit) {
			limit = v
		}
	}
	files := []string{"memory.limit_in_bytes"}
	if c.memory.v2 {
		files = []string{"memory.max", "memory.high"}
	}
	for i, d := range c.memory.ancestors() {
		for _, f := range files {
			v, err := readLimit(filepath.Join(d, f))
			if err != nil {
				if i == 0 && f == files[0] && !errors.Is(err, os.ErrNotExist) {
					return 0, err
				}
				// Ancestors and the root cgroup may lack limit files.
				continue
			}
			lower(v)
		}
	}
	if !c.memory.v2 {
		// v1 with use_hierarchy reports the effective limit here, including
		// ancestors that are not visible in this mount namespace.
		if v, ok := stat["hierarchical_memory_limit"]; ok && v < v1UnlimitedFloor {
			lower(v)
		}
	}
	return limit, nil
}

// CPUUsage returns the cumulative CPU time used by the cgroup.
func (c *CGroups) CPUUsage() (time.Duration, error) {
	if !c.cpuacct.ok() {
		return 0, fmt.Errorf("%w: cpu accounting", ErrNoCgroup)
	}
	if c.cpuacct.v2 {
		stat, err := readKeyed(filepath.Join(c.cpuacct.path, "cpu.stat"))
		if err != nil {
			return 0, err
		}
		usec, ok := stat["usage_usec"]
		if !ok {
			return 0, fmt.Errorf("cgroups: %s has no usage_usec", filepath.Join(c.cpuacct.path, "cpu.stat"))
		}
		return durationOf(usec, time.Microsecond), nil
	}
	ns, err := readUint(filepath.Join(c.cpuacct.path, "cpuacct.usage"))
	if err != nil {
		return 0, err
	}
	return durationOf(ns, time.Nanosecond), nil
}

func durationOf(v uint64, unit time.Duration) time.Duration {
	if v > uint64(math.MaxInt64/int64(unit)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(v) * unit
}

// CPUQuota returns the smallest CPU quota up the hierarchy in cores
// (quota/period); ok is false when no quota applies.
func (c *CGroups) CPUQuota() (cores float64, ok bool, err error) {
	if !c.cpu.ok() {
		return 0, false, nil
	}
	for _, d := range c.cpu.ancestors() {
		var q float64
		var has bool
		var rerr error
		if c.cpu.v2 {
			q, has, rerr = readCPUMax(filepath.Join(d, "cpu.max"))
		} else {
			q, has, rerr = readCFS(d)
		}
		if rerr != nil {
			if errors.Is(rerr, os.ErrNotExist) {
				continue
			}
			return 0, false, rerr
		}
		if has && (!ok || q < cores) {
			cores, ok = q, true
		}
	}
	return cores, ok, nil
}

// readCPUMax parses cgroup v2 cpu.max: "max 100000" or "50000 100000".
func readCPUMax(p string) (float64, bool, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, false, err
	}
	return parseCPUMax(p, string(data))
}

func parseCPUMax(p, s string) (float64, bool, error) {
	f := strings.Fields(s)
	if len(f) == 0 || len(f) > 2 {
		return 0, false, fmt.Errorf("cgroups: malformed %s: %q", p, s)
	}
	if f[0] == "max" {
		return 0, false, nil
	}
	quota, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cgroups: malformed %s: %q", p, s)
	}
	period := uint64(100000)
	if len(f) == 2 {
		period, err = strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("cgroups: malformed %s: %q", p, s)
		}
	}
	if period == 0 || quota == 0 {
		return 0, false, fmt.Errorf("cgroups: malformed %s: %q", p, s)
	}
	return float64(quota) / float64(period), true, nil
}

func readCFS(d string) (float64, bool, error) {
	qp := filepath.Join(d, "cpu.cfs_quota_us")
	data, err := os.ReadFile(qp)
	if err != nil {
		return 0, false, err
	}
	quota, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("cgroups: malformed %s: %q", qp, data)
	}
	if quota <= 0 {
		return 0, false, nil // -1: no quota
	}
	period, err := readUint(filepath.Join(d, "cpu.cfs_period_us"))
	if err != nil {
		return 0, false, err
	}
	if period == 0 {
		return 0, false, fmt.Errorf("cgroups: zero cpu.cfs_period_us in %s", d)
	}
	return float64(quota) / float64(period), true, nil
}

// readUint reads a file holding one unsigned integer.
func readUint(p string) (uint64, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroups: malformed %s: %q", p, bytes.TrimSpace(data))
	}
	return v, nil
}

// readLimit reads a memory limit: "max" and v1's huge sentinel are 0 (none).
func readLimit(p string) (uint64, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return parseLimit(p, string(data))
}

func parseLimit(p, s string) (uint64, error) {
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroups: malformed %s: %q", p, s)
	}
	if v >= v1UnlimitedFloor {
		return 0, nil
	}
	return v, nil
}

// readKeyed reads a "key value" per line file such as memory.stat or cpu.stat.
func readKeyed(p string) (map[string]uint64, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	return parseKeyed(data), nil
}

// parseKeyed parses "key value" lines; lines that do not parse are skipped,
// because kernels add keys (and some carry non-numeric values) over time.
func parseKeyed(data []byte) map[string]uint64 {
	out := make(map[string]uint64, 64)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out
}

// OOMKills returns how many processes the kernel's OOM killer has killed in
// the memory cgroup: "oom_kill" of memory.events on v2 (this cgroup and
// below), of memory.oom_control on v1 (kernel 4.13 and later).
func (c *CGroups) OOMKills() (uint64, error) {
	if !c.memory.ok() {
		return 0, fmt.Errorf("%w: memory controller", ErrNoCgroup)
	}
	name := "memory.oom_control"
	if c.memory.v2 {
		name = "memory.events"
	}
	return oomKill(filepath.Join(c.memory.path, name))
}

// HostOOMKills returns how many processes the kernel's OOM killer has killed
// on the host: "oom_kill" of /proc/vmstat (kernel 4.13 and later).
func HostOOMKills() (uint64, error) { return oomKill("/proc/vmstat") }

func oomKill(p string) (uint64, error) {
	kv, err := readKeyed(p)
	if err != nil {
		return 0, err
	}
	n, ok := kv["oom_kill"]
	if !ok {
		return 0, fmt.Errorf("cgroups: %s has no oom_kill (kernel before 4.13)", p)
	}
	return n, nil
}
