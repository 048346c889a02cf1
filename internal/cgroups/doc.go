// Package cgroups locates this process's cgroups (v1, v2 or hybrid) and reads
// memory working set, memory limit, CPU usage and CPU quota from them.
//
// Every constructor has a twin that takes file paths, so each layout can be
// tested from a testdata tree on any machine. Nothing here decides; callers in
// package resources turn readings into fractions.
package cgroups
