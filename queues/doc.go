// Package queues names task queues by the resource class of the work on them.
//
// Temporal creates a task queue the first time any code names it, so a
// workflow that routes to "gpu-procesing" while the GPU worker polls
// "gpu-processing" waits forever, silently. Queues here are typed values
// declared once in a [Registry]; looking up a name that was never declared is
// an error that suggests the closest declared names.
//
// Package queues depends on the Temporal SDK and the standard library only,
// so workflow code can import it; the presets of each class and the worker
// construction live in package pool.
package queues
