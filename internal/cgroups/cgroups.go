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

// ErrNoCgroup reports that no usable cgroup hierarchy was found for a
// controller (not Linux, cgroupfs not mounted, or the controller is missing).
var ErrNoCgroup = errors.New("cgroups: no cgroup found")

// v1Unlimited is the value v1 prints for "no limit" (PAGE_COUNTER_MAX pages,
// rounded); anything at or above 2^62 is treated as unlimited.
const v1UnlimitedFloor = uint64(1) << 62

// dir is one controller's directory and the mount point above which no
// ancestor is visible.
type dir struct {
	path  string
	mount string
	v2    bool
}

func (d dir) ok() bool { return d.path != "" }

// ancestors returns d.path and each parent up to and including the mount point.
func (d dir) ancestors() []string {
	var out []string
	p := d.path
	for {
		out = append(out, p)
		if p == d.mount || len(p) <= len(d.mount) {
			return out
		}
		parent := filepath.Dir(p)
		if parent == p {
			return out
		}
		p = parent
	}
}

// CGroups is the set of controller directories of one process.
type CGroups struct {
	memory  dir
	cpu     dir // cpu.max (v2) or cpu.cfs_* (v1)
	cpuacct dir // cpu.stat (v2) or cpuacct.usage (v1)
}

// Detect locates the cgroups of the calling process.
func Detect() (*CGroups, error) {
	return DetectFrom("/proc/self/cgroup", "/proc/self/mountinfo")
}

// DetectFrom locates cgroups from a /proc/<pid>/cgroup file and a mountinfo
// file. Mount points in mountinfo are used as they are, so a testdata tree
// writes its own absolute paths into it (see the tests).
//
// On hybrid hosts a v1 hierarchy that carries a controller wins over the
// unified one: the kernel accounts a controller on one hierarchy only.
func DetectFrom(procCgroupPath, mountInfoPath string) (*CGroups, error) {
	return detectFrom(procCgroupPath, mountInfoPath, "")
}

// DetectRoot locates cgroups in a tree laid out like a host's root: it reads
// root/proc/self/cgroup and root/proc/self/mountinfo and looks for every mount
// point under root. Tests use it with testdata trees.
func DetectRoot(root string) (*CGroups, error) {
	return detectFrom(filepath.Join(root, "proc/self/cgroup"), filepath.Join(root, "proc/self/mountinfo"), root)
}

// detectFrom prefixes every mount point with root, so testdata trees can keep
// the real mount points (/sys/fs/cgroup/...) in their mountinfo files.
func detectFrom(procCgroupPath, mountInfoPath, root string) (*CGroups, error) {
	pcData, err := os.ReadFile(procCgroupPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCgroup, err)
	}
	miData, err := os.ReadFile(mountInfoPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCgroup, err)
	}
	pcs, err := parseProcCgroup(bytes.NewReader(pcData))
	if err != nil {
		return nil, err
	}
	mounts, err := parseMountInfo(bytes.NewReader(miData))
	if err != nil {
		return nil, err
	}
	if root != "" {
		for i := range mounts {
			mounts[i].MountPoint = filepath.Join(root, mounts[i].MountPoint)
		}
	}
	cg := &CGroups{
		memory:  find(pcs, mounts, "memory"),
		cpu:     find(pcs, mounts, "cpu"),
		cpuacct: find(pcs, mounts, "cpuacct"),
	}
	if !cg.memory.ok() && !cg.cpu.ok() && !cg.cpuacct.ok() {
		return nil, fmt.Errorf("%w: no memory or cpu controller mounted", ErrNoCgroup)
	}
	return cg, nil
}

func find(pcs []procCgroup, mounts []mount, controller string) dir {
	// v1 first: on a hybrid host the unified hierarchy has no controllers
	// that a v1 hierarchy holds.
	for _, pc := range pcs {
		if len(pc.Controllers) == 0 || !hasController(pc.Controllers, controller) {
			continue
		}
		for _, m := range mounts {
			if !m.V2 && hasController(m.Controllers, controller) {
				return dir{path: resolve(m, pc.Path), mount: m.MountPoint}
			}
		}
	}
	for _, pc := range pcs {
		if len(pc.Controllers) != 0 {
			continue
		}
		for _, m := range mounts {
			if !m.V2 {
				continue
			}
			d := dir{path: resolve(m, pc.Path), mount: m.MountPoint, v2: true}
			// cpu.stat usage_usec exists even without the cpu controller.
			if controller == "cpuacct" || v2HasController(d.mount, controller) {
				return d
			}
		}
	}
	return dir{}
}

// v2HasController reports whether the unified hierarchy offers a controller.
// A missing cgroup.controllers file is read as "offered" so that minimal
// testdata trees and unusual mounts still work; reading the data files then
// says whether the controller really is there.
func v2HasController(mountPoint, controller string) bool {
	data, err := os.ReadFile(filepath.Join(mountPoint, "cgroup.controllers"))
	if err != nil {
		return true
	}
	return hasController(strings.Fields(string(data)), controller)
}

// Version reports the memory hierarchy's version (1 or 2), 0 if none.
func (c *CGroups) Version() int {
	switch {
	case !c.memory.ok():
		return 0
	case c.memory.v2:
		return 2
	default:
		return 1
	}
}

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
