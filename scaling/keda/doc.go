// Package keda serves a pool's desired replicas to KEDA as an external
// scaler, over KEDA's own gRPC contract (externalscaler.proto, from KEDA's
// published package): IsActive, StreamIsActive, GetMetricSpec, GetMetrics.
//
// A ScaledObject selects a pool with its trigger's metadata:
//
//	triggers:
//	  - type: external            # or external-push, for StreamIsActive
//	    metadata:
//	      scalerAddress: headroom-scaler.workers.svc:6000
//	      taskQueue: gpu-ml-inference
//
// For that pool the scaler reports one metric, its desired replicas
// (scaling.Recommender over the pool's Signal), with a target of 1 per
// replica: the HPA's AverageValue rule, ⌈value ÷ target⌉, then asks for
// exactly that many. IsActive is desired > 0, so KEDA scales from zero on
// the backlog alone and to zero only when the queue is empty and no slot is
// held. The last decision per pool is also the headroom.scaling.desired_replicas
// gauge, so that a dashboard shows what KEDA was told.
//
// Serve listens on 127.0.0.1 unless told otherwise; TLS is optional. Bad
// requests (no taskQueue, a queue with no pool) are answered with gRPC
// InvalidArgument or NotFound naming the field; a Signal that fails is
// Unavailable, and KEDA's fallback applies.
package keda
