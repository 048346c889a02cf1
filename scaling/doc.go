// Package scaling turns what only a pool's workers know into the replica
// count an autoscaler needs: desired replicas per pool, from the task
// queue's backlog as the server reports it and the slots one replica of the
// pool's class holds at its targets (the tuner's Stats: Issued + Fit).
// Kubernetes, KEDA and Temporal stay the distributed engine; this package
// decides nothing but the number.
//
// The rules ([Desired], [Recommender]):
//
//   - enough replicas for the backlog plus the slots in use, at the
//     per-replica capacity, within Policy.Min and Policy.Max;
//   - never fewer than the slots in use need, nor than the replicas that
//     have one: a pool whose slots are all busy while the backlog reads 0 is
//     not scaled in mid-work;
//   - zero only when the queue is empty and no slot is held;
//   - up at once, down only to the highest recommendation of the last
//     Policy.ScaleDownWindow (the HPA's stabilization), so that it does not
//     flap.
//
// [Reader] reads the queue's statistics (DescribeTaskQueue with stats),
// at most once per interval: the server rate-limits describe calls per
// namespace, so run one reader per pool. [FleetReader] reads the pool's
// replicas and their slots in use from the workers' heartbeats on the
// server (ListWorkers); [Source] joins the two into a [Signal]. Package
// keda serves the recommendation to KEDA as an external scaler.
package scaling
