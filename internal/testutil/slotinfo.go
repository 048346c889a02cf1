package testutil

import (
	"log/slog"
	"sync/atomic"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

// NopLogger discards everything.
var NopLogger log.Logger = log.NewStructuredLogger(slog.New(slog.DiscardHandler))

// ReservationInfo is a worker.SlotReservationInfo. Issued, if set, is read
// by NumIssuedSlots, so a test can share one counter across reservers as the
// SDK does per worker and slot kind.
type ReservationInfo struct {
	Queue  string
	Kind   enumspb.TaskQueueKind
	Issued *atomic.Int64
}

var _ worker.SlotReservationInfo = (*ReservationInfo)(nil)

func (r *ReservationInfo) TaskQueue() string                     { return r.Queue }
func (r *ReservationInfo) TaskQueueKind() enumspb.TaskQueueKind  { return r.Kind }
func (r *ReservationInfo) WorkerBuildId() string                 { return "" }
func (r *ReservationInfo) WorkerIdentity() string                { return "test-worker" }
func (r *ReservationInfo) Logger() log.Logger                    { return NopLogger }
func (r *ReservationInfo) MetricsHandler() client.MetricsHandler { return client.MetricsNopHandler }
func (r *ReservationInfo) NumIssuedSlots() int {
	if r.Issued == nil {
		return 0
	}
	return int(r.Issued.Load())
}

// MarkUsedInfo is a worker.SlotMarkUsedInfo for one permit.
type MarkUsedInfo struct{ P *worker.SlotPermit }

var _ worker.SlotMarkUsedInfo = MarkUsedInfo{}

func (m MarkUsedInfo) Permit() *worker.SlotPermit            { return m.P }
func (m MarkUsedInfo) Logger() log.Logger                    { return NopLogger }
func (m MarkUsedInfo) MetricsHandler() client.MetricsHandler { return client.MetricsNopHandler }

// ReleaseInfo is a worker.SlotReleaseInfo for one permit. The SDK's release
// reason type is internal and cannot be named outside it, so ReleaseInfo
// embeds the (nil) interface for the Reason method: calling Reason panics.
// headroom's suppliers never call it; they learn whether a slot was used from
// MarkSlotUsed.
type ReleaseInfo struct {
	worker.SlotReleaseInfo // nil; only for the Reason method's type
	P                      *worker.SlotPermit
}

func (r ReleaseInfo) Permit() *worker.SlotPermit            { return r.P }
func (r ReleaseInfo) Logger() log.Logger                    { return NopLogger }
func (r ReleaseInfo) MetricsHandler() client.MetricsHandler { return client.MetricsNopHandler }
