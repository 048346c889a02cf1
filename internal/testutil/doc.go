// Package testutil holds fakes shared by headroom's tests, benchmarks and
// examples: CPU/memory and GPU sources whose readings a test sets, and the
// SDK's slot-info objects. Everything here is pure Go (CGO_ENABLED=0 works)
// and safe for concurrent use.
package testutil
