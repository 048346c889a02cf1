package cgroups

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
