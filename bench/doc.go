// Package bench holds headroom's benchmarks, run side by side with the SDK's
// own suppliers so one `go test -bench . -benchmem ./bench/` compares them.
package bench
