package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// mount is one cgroup line of /proc/self/mountinfo.
type mount struct {
	Root        string   // root of the mount within the hierarchy
	MountPoint  string   // where it is mounted
	V2          bool     // fstype cgroup2
	Controllers []string // v1 controllers from the super options
}

// parseMountInfo returns the cgroup and cgroup2 mounts of a mountinfo file.
// Lines that are not cgroup mounts, or are malformed, are skipped: the file
// lists every mount of the namespace and a parse error in one unrelated line
// must not hide the cgroup ones.
func parseMountInfo(r io.Reader) ([]mount, error) {
	var out []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || len(fields) < sep+3 {
			continue
		}
		fstype := fields[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		m := mount{
			Root:       unescapeOctal(fields[3]),
			MountPoint: unescapeOctal(fields[4]),
			V2:         fstype == "cgroup2",
		}
		if !m.V2 {
			for _, opt := range strings.Split(fields[sep+3], ",") {
				switch opt {
				case "rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec":
					continue
				}
				if strings.HasPrefix(opt, "name=") || strings.Contains(opt, "=") {
					continue
				}
				m.Controllers = append(m.Controllers, opt)
			}
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cgroups: read mountinfo: %w", err)
	}
	return out, nil
}

// unescapeOctal undoes the \040-style escaping mountinfo applies to spaces,
// tabs, newlines and backslashes in paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return s[0] <= '3'
}

// procCgroup is one line of /proc/self/cgroup.
type procCgroup struct {
	Controllers []string // empty for the v2 unified line "0::/path"
	Path        string
}

// parseProcCgroup parses /proc/self/cgroup: "hierarchy-ID:controller-list:path".
func parseProcCgroup(r io.Reader) ([]procCgroup, error) {
	var out []procCgroup
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("cgroups: malformed /proc/self/cgroup line %q", line)
		}
		pc := procCgroup{Path: parts[2]}
		if parts[1] != "" {
			for _, c := range strings.Split(parts[1], ",") {
				c = strings.TrimPrefix(c, "name=")
				if c != "" {
					pc.Controllers = append(pc.Controllers, c)
				}
			}
		}
		out = append(out, pc)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cgroups: read /proc/self/cgroup: %w", err)
	}
	return out, nil
}

// resolve maps a cgroup path from /proc/self/cgroup onto a directory under a
// mount. Without a cgroup namespace the path includes the mount root
// ("/docker/abc" under root "/docker/abc"); with one it is relative to it.
// A path outside the mount root (a process moved after the mount) falls back
// to the mount point itself, the most specific directory that is visible.
func resolve(m mount, cgPath string) string {
	cgPath = path.Clean("/" + cgPath)
	root := path.Clean("/" + m.Root)
	switch {
	case root == "/":
		return path.Join(m.MountPoint, cgPath)
	case cgPath == root:
		return m.MountPoint
	case strings.HasPrefix(cgPath, root+"/"):
		return path.Join(m.MountPoint, strings.TrimPrefix(cgPath, root))
	default:
		return m.MountPoint
	}
}

func hasController(list []string, name string) bool {
	for _, c := range list {
		if c == name {
			return true
		}
	}
	return false
}
