// Package pool starts a worker pool of one resource class: a [Preset] per
// [queues.Class] (the slot-supplier options such a pool starts with: GPU, few
// concurrent activities and a GPU-memory cost prior; CPU, high concurrency;
// high-memory, a memory cost prior) and [NewWorker], which builds a worker
// for a declared queue with its preset's tuner on a shared controller.
// Its workers heartbeat for their running activities ([Heartbeats]) and,
// when stopped, drain: activities get the preset's DrainWindow to finish,
// then are cancelled and reported for a retry elsewhere before Stop returns
// ([Drain]).
//
// Worker binaries import pool; workflow code imports only queues and
// routing, which depend on the Temporal SDK and the standard library alone.
package pool
