// Package queues names task queues by the resource class of the work on them.
//
// Temporal creates a task queue the first time any code names it, so a
// workflow that routes to "gpu-procesing" while the GPU worker polls
// "gpu-processing" waits forever, silently. Queues here are typed values
// declared once in a [Registry]; looking up a name that was never declared is
// an error that suggests the closest declared names.
//
// Each [Class] has a [Preset]: the slot-supplier options a worker pool of that
// class should start with (GPU: few concurrent activities, a GPU-memory cost
// prior; CPU: high concurrency; high-memory: a memory cost prior).
// [NewWorker] builds a worker for a queue with its class's preset; the
// activity-only classes' presets (GPU, high-memory, video) disable its
// workflow worker.
package queues
