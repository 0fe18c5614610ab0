package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Expected-version constants for Append, after EventStoreDB's. Any other expected version is
// the exact version the stream must be at (the version of its last event; versions start at 1).
const (
	// Any appends whatever the stream's version, creating the stream if need be.
	Any int64 = -1
	// NoStream appends only if the stream has no event yet.
	NoStream int64 = 0
)

// ErrVersionConflict is matched (errors.Is) by the *VersionConflictError of an Append whose
// expected version was not the stream's.
var ErrVersionConflict = errors.New("eventstore: version conflict")

// ErrClosed is returned by a store's methods once it is closed.
var ErrClosed = errors.New("eventstore: store closed")

// VersionConflictError is an Append refused because the stream was at Actual, not Expected.
// Nothing of that Append was written.
type VersionConflictError struct {
	Stream   string
	Expected int64
	Actual   int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("eventstore: version conflict on stream %q: expected version %d, stream is at %d", e.Stream, e.Expected, e.Actual)
}

// Is makes a *VersionConflictError match ErrVersionConflict.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

// HandlerError is the error Subscribe returns when its handler failed: the event it failed on
// and the handler's error (Unwrap).
type HandlerError struct {
	Event RecordedEvent
	Err   error
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("eventstore: handler failed at position %d (stream %q version %d): %v", e.Event.Position, e.Event.Stream, e.Event.Version, e.Err)
}

// Unwrap returns the handler's error.
func (e *HandlerError) Unwrap() error { return e.Err }

// Event is an event to append: its type name (for the reader to choose a decoder, and for
// humans reading the table) and its encoded body.
type Event struct {
	Type string
	Data []byte
	// Metadata is optional (a correlation ID, a trace context); it is stored and read back as is.
	Metadata map[string]string
}

// RecordedEvent is an event as stored: its stream, its version within the stream (1, 2, … with
// no gap), its global position (increasing across all streams, in the order readers see events)
// and the time the store recorded it.
type RecordedEvent struct {
	Stream   string
	Version  int64
	Position int64
	Type     string
	Data     []byte
	Metadata map[string]string
	Time     time.Time
}

// AppendResult is what an Append wrote: the stream's version after it (the last event's version)
// and the last event's global position.
type AppendResult struct {
	Version  int64
	Position int64
}

// Handler handles one event of a subscription. An error ends the subscription (Subscribe
// returns it in a *HandlerError); to skip an event, return nil.
type Handler func(ctx context.Context, e RecordedEvent) error

// Store is an event store. Implementations (the in-memory Memory here, the PostgreSQL store in
// package eventbus/eventstore/pgstore) pass the contract in package
// eventbus/eventstore/eventstoretest.
type Store interface {
	// Append writes events at the end of stream, all or none, if the stream is at
	// expectedVersion (or whatever its version with Any). A stale expected version fails with a
	// *VersionConflictError matching ErrVersionConflict.
	Append(ctx context.Context, stream string, expectedVersion int64, events ...Event) (AppendResult, error)
	// ReadStream returns up to limit events of stream with versions from fromVersion on, in
	// version order (limit <= 0: all). An unknown stream has no events.
	ReadStream(ctx context.Context, stream string, fromVersion int64, limit int) ([]RecordedEvent, error)
	// ReadAll returns up to limit events with positions from fromPosition on, in position order
	// (limit <= 0: all).
	ReadAll(ctx context.Context, fromPosition int64, limit int) ([]RecordedEvent, error)
	// Subscribe hands h every event from fromPosition on, in position order, each once: first the
	// stored ones (catch-up), then new ones as they are appended (live). It blocks until ctx
	// ends (returning ctx.Err()) or h fails (a *HandlerError).
	Subscribe(ctx context.Context, fromPosition int64, h Handler) error
}

// SnapshotStore keeps the latest snapshot of each stream.
type SnapshotStore interface {
	// SaveSnapshot stores s as its stream's snapshot, unless a snapshot of a later version is
	// already stored.
	SaveSnapshot(ctx context.Context, s Snapshot) error
	// LoadSnapshot returns the stream's latest snapshot, ok false if it has none.
	LoadSnapshot(ctx context.Context, stream string) (s Snapshot, ok bool, err error)
}

// Snapshot is an encoded aggregate state as of Version of Stream.
type Snapshot struct {
	Stream  string
	Version int64
	Data    []byte
	Time    time.Time
}

// CheckExpected reports whether a stream at version actual may take an Append expecting
// expected, returning the *VersionConflictError if not. Store implementations share it.
func CheckExpected(stream string, expected, actual int64) error {
	if expected == Any || expected == actual {
		return nil
	}
	return &VersionConflictError{Stream: stream, Expected: expected, Actual: actual}
}

// ValidateAppend checks an Append's arguments, with errors prefixed like the store's own.
// Store implementations share it.
func ValidateAppend(stream string, expected int64, events []Event) error {
	var errs []error
	if stream == "" {
		errs = append(errs, errors.New("eventstore: Append: stream name is empty"))
	}
	if expected < Any {
		errs = append(errs, fmt.Errorf("eventstore: Append: expected version %d is invalid (Any, NoStream or a version >= 1)", expected))
	}
	if len(events) == 0 {
		errs = append(errs, errors.New("eventstore: Append: no events"))
	}
	for i, e := range events {
		if e.Type == "" {
			errs = append(errs, fmt.Errorf("eventstore: Append: event %d has no Type", i))
		}
	}
	return errors.Join(errs...)
}
