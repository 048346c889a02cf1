// Package integration runs headroom against a real Temporal server started by
// the tests themselves (go.temporal.io/server/temporaltest).
package integration
