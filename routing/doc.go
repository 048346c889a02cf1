// Package routing sends activities to the task queue of their resource class,
// from workflow code. Everything here runs inside workflows: it uses only the
// workflow package's deterministic APIs and survives replay.
//
//   - [Options] / [WithQueue]: activity options for a queue with its class's
//     defaults (timeouts, heartbeat, retry), overridable field by field.
//   - [Table]: activity → queue. Workflow code calls Table.Execute and the
//     table decides; an activity without a route is an error, never a silent
//     default queue.
//   - Fallback: "try the GPU queue; if no GPU worker starts it within the
//     schedule-to-start timeout, run it on CPU".
//   - Escalation: an activity that fails with [ResourceExhausted] (host OOM,
//     CUDA out of memory) runs once more on the next bigger class.
//   - [Table.Check]: every routed activity is registered by some worker
//     polling its queue.
package routing
