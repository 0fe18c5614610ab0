package eventstore

import (
	"context"
	"time"
)

// Hooks are optional callbacks observing what goes through this package's helpers: an
// Aggregate's Load, Save and Snap, and the events a Projection or an Outbox handles (and
// pgstore.TxProjection's). A nil field costs nothing: no clock read, no allocation. They run
// synchronously, in the goroutine of the call that caused them, so they may run concurrently:
// they must be safe for concurrent use and quick. Every event here belongs to a call, so every
// hook gets that call's ctx.
//
// A Store's own methods have no hooks: a direct Append's caller has its result already.
type Hooks struct {
	// OnAppend is called after every Append a Save made, successful or not (a version
	// conflict included, which also calls OnConflict). Setting it times the Append: two clock
	// reads.
	OnAppend func(ctx context.Context, info AppendInfo)
	// OnConflict is called when a Save's Append was refused for a stale expected version.
	OnConflict func(ctx context.Context, info ConflictInfo)
	// OnLoad is called after every Load, successful or not. Setting it times the Load.
	OnLoad func(ctx context.Context, info LoadInfo)
	// OnSnapshot is called after every snapshot Save or Snap tried to store.
	OnSnapshot func(ctx context.Context, info SnapshotInfo)
	// OnSnapshotFallback is called when Load found a snapshot it could not use (its state no
	// longer decodes) and replayed the stream from the start instead.
	OnSnapshotFallback func(ctx context.Context, info SnapshotFallbackInfo)
	// OnProject is called after a Projection's (or an Outbox's) handler returned for an event.
	// Setting it times the handler.
	OnProject func(ctx context.Context, info ProjectInfo)
	// OnCheckpoint is called after a Projection tried to save its checkpoint.
	OnCheckpoint func(ctx context.Context, info CheckpointInfo)
}

// AppendInfo describes one Append made by Save, for Hooks.OnAppend.
type AppendInfo struct {
	Stream   string
	Expected int64        // the expected version passed to Append
	Events   int          // how many events it carried
	Result   AppendResult // zero when Err is set
	Err      error
	Took     time.Duration
}

// ConflictInfo describes an Append refused for a stale expected version, for Hooks.OnConflict.
type ConflictInfo struct {
	Stream   string
	Expected int64
	Actual   int64 // the stream's version; -1 when the store could not tell
}

// LoadInfo describes one Load, for Hooks.OnLoad.
type LoadInfo struct {
	Stream string
	// Version is the version the state was rebuilt at (NoStream: the stream has no event).
	Version int64
	// SnapshotVersion is the version of the snapshot the state started from; 0 when Load
	// started from New (no snapshot, or one it could not use).
	SnapshotVersion int64
	// Replayed is how many events Load applied on top of the snapshot (or of New).
	Replayed int
	Err      error
	Took     time.Duration
}

// SnapshotInfo describes one snapshot written by Save or Snap, for Hooks.OnSnapshot.
type SnapshotInfo struct {
	Stream  string
	Version int64
	Bytes   int // the encoded state's size; 0 when encoding failed
	Err     error
}

// ProjectInfo describes one event handled by a Projection, for Hooks.OnProject.
type ProjectInfo struct {
	Projection string // the Projection's (or Outbox's) Name
	Event      RecordedEvent
	Err        error // the handler's error, which ends the Projection's Run
	Took       time.Duration
}

// CheckpointInfo describes one checkpoint save, for Hooks.OnCheckpoint.
type CheckpointInfo struct {
	Projection string
	Next       int64 // the position the projection will resume from
	Err        error
}

// since returns the time elapsed from start, or 0 when start is the zero time (no hook asked
// for a clock read).
func since(start time.Time) time.Duration {
	if start.IsZero() {
		return 0
	}
	return time.Since(start)
}

// ObserveProject runs handle for e under h.OnProject: for stores (pgstore.TxProjection) that
// run their own projection loop and report through the same hook.
func (h Hooks) ObserveProject(ctx context.Context, name string, e RecordedEvent, handle func() error) error {
	if h.OnProject == nil {
		return handle()
	}
	start := time.Now()
	err := handle()
	h.OnProject(ctx, ProjectInfo{Projection: name, Event: e, Err: err, Took: time.Since(start)})
	return err
}
