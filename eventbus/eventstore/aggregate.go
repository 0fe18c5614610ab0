package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Typer is implemented by event types that name themselves; Aggregate stores the name as the
// event's Type. Events that do not implement it are stored under Aggregate.EventType.
type Typer interface {
	EventType() string
}

// SnapshotPolicy says when Save takes a snapshot. The zero value never does (the caller may
// still call Snapshot).
type SnapshotPolicy struct {
	// Every takes a snapshot whenever an Append crosses a multiple of Every versions
	// (Every 100: at version 100, 200, …, or the first Append past each). 0: never.
	Every int64
}

// due reports whether an Append moving a stream from version from to version to crosses a
// multiple of Every.
func (p SnapshotPolicy) due(from, to int64) bool {
	return p.Every > 0 && to/p.Every > from/p.Every
}

// SnapshotFallbackInfo describes a snapshot Load could not use, for Hooks.OnSnapshotFallback.
type SnapshotFallbackInfo struct {
	Stream  string
	Version int64 // the snapshot's version
	Err     error // why it could not be used (a decoding error after a schema change)
}

// Aggregate describes how to rebuild and store an aggregate of state A from events of type E.
// New and Apply are required; Store too. Zero Codecs mean JSON; a nil Snapshots store means no
// snapshots.
type Aggregate[A, E any] struct {
	Store Store
	// Events encodes the events; nil: JSON.
	Events Codec[E]
	// EventType is the Type stored for events that do not implement Typer; "": the Go type's
	// name is not guessed, so then every event must implement Typer.
	EventType string
	// Snapshots keeps snapshots (a *Memory, the PostgreSQL store, …); nil: no snapshots.
	Snapshots SnapshotStore
	// State encodes snapshots; nil: JSON. A snapshot it cannot decode (the state's schema
	// changed) is ignored: Load rebuilds from the events and reports OnSnapshotFallback.
	State Codec[A]
	// Policy says when Save takes a snapshot.
	Policy SnapshotPolicy
	// New returns the state of an aggregate without events.
	New func() A
	// Apply returns the state after e. It must be deterministic.
	Apply func(state A, e E) A
	// Hooks observe Load, Save and Snap; every field is optional.
	Hooks Hooks
}

// Validate reports what is missing from a.
func (a Aggregate[A, E]) Validate() error {
	var errs []error
	if a.Store == nil {
		errs = append(errs, errors.New("eventstore: Aggregate: Store is nil"))
	}
	if a.New == nil {
		errs = append(errs, errors.New("eventstore: Aggregate: New is nil"))
	}
	if a.Apply == nil {
		errs = append(errs, errors.New("eventstore: Aggregate: Apply is nil"))
	}
	if a.Policy.Every < 0 {
		errs = append(errs, fmt.Errorf("eventstore: Aggregate: Policy.Every %d is negative", a.Policy.Every))
	}
	if a.Policy.Every > 0 && a.Snapshots == nil {
		errs = append(errs, errors.New("eventstore: Aggregate: Policy.Every is set but Snapshots is nil"))
	}
	return errors.Join(errs...)
}

func (a Aggregate[A, E]) events() Codec[E] {
	if a.Events == nil {
		return JSON[E]{}
	}
	return a.Events
}

func (a Aggregate[A, E]) state() Codec[A] {
	if a.State == nil {
		return JSON[A]{}
	}
	return a.State
}

// loadBatch is how many events Load reads per round trip.
const loadBatch = 1000

// Load rebuilds the aggregate of stream: from its latest snapshot when there is one it can
// decode, then every later event. It returns the state and its version (NoStream for a stream
// without events), the expected version for the next Save. Cost: one snapshot read, then one
// read per 1,000 events after the snapshot.
func Load[A, E any](ctx context.Context, a Aggregate[A, E], stream string) (A, int64, error) {
	h := a.Hooks.OnLoad
	if h == nil {
		st, v, _, _, err := load(ctx, a, stream)
		return st, v, err
	}
	start := time.Now()
	st, v, snap, n, err := load(ctx, a, stream)
	h(ctx, LoadInfo{Stream: stream, Version: v, SnapshotVersion: snap, Replayed: n, Err: err, Took: time.Since(start)})
	return st, v, err
}

// load is Load, also returning the snapshot version it started from and how many events it
// applied, for Hooks.OnLoad.
func load[A, E any](ctx context.Context, a Aggregate[A, E], stream string) (_ A, version, snapVersion int64, replayed int, _ error) {
	var zero A
	if err := a.Validate(); err != nil {
		return zero, 0, 0, 0, err
	}
	state := a.New()
	version = NoStream
	if a.Snapshots != nil {
		s, ok, err := a.Snapshots.LoadSnapshot(ctx, stream)
		if err != nil {
			return zero, 0, 0, 0, fmt.Errorf("eventstore: load snapshot of %q: %w", stream, err)
		}
		if ok {
			st, err := a.state().Unmarshal(s.Data)
			if err == nil {
				state, version, snapVersion = st, s.Version, s.Version
			} else if h := a.Hooks.OnSnapshotFallback; h != nil {
				h(ctx, SnapshotFallbackInfo{Stream: stream, Version: s.Version, Err: err})
			}
		}
	}
	codec := a.events()
	for {
		evs, err := a.Store.ReadStream(ctx, stream, version+1, loadBatch)
		if err != nil {
			return zero, 0, 0, 0, fmt.Errorf("eventstore: load %q: %w", stream, err)
		}
		for _, re := range evs {
			e, err := codec.Unmarshal(re.Data)
			if err != nil {
				return zero, 0, 0, 0, fmt.Errorf("eventstore: load %q: event version %d (%s): %w", stream, re.Version, re.Type, err)
			}
			state = a.Apply(state, e)
			version = re.Version
			replayed++
		}
		if len(evs) < loadBatch {
			return state, version, snapVersion, replayed, nil
		}
	}
}

// Save appends events to stream, expecting it at version (as Load returned it), and, when the
// Policy says so, stores a snapshot of state with the events applied. It returns the Append's
// result and the new state. A failed snapshot does not undo the Append: the error is returned
// together with the result (errors.Is(err, ErrSnapshot)).
func Save[A, E any](ctx context.Context, a Aggregate[A, E], stream string, state A, version int64, events ...E) (AppendResult, A, error) {
	if err := a.Validate(); err != nil {
		return AppendResult{}, state, err
	}
	recs, err := Encode(a.events(), a.EventType, events...)
	if err != nil {
		return AppendResult{}, state, err
	}
	var start time.Time
	if a.Hooks.OnAppend != nil {
		start = time.Now()
	}
	res, err := a.Store.Append(ctx, stream, version, recs...)
	if h := a.Hooks.OnAppend; h != nil {
		h(ctx, AppendInfo{Stream: stream, Expected: version, Events: len(recs), Result: res, Err: err, Took: since(start)})
	}
	if err != nil {
		if h := a.Hooks.OnConflict; h != nil && errors.Is(err, ErrVersionConflict) {
			info := ConflictInfo{Stream: stream, Expected: version, Actual: -1}
			var vc *VersionConflictError
			if errors.As(err, &vc) {
				info.Actual = vc.Actual
			}
			h(ctx, info)
		}
		return res, state, err
	}
	for _, e := range events {
		state = a.Apply(state, e)
	}
	from := res.Version - int64(len(events))
	if a.Policy.due(from, res.Version) {
		if err := Snap(ctx, a, stream, state, res.Version); err != nil {
			return res, state, err
		}
	}
	return res, state, nil
}

// ErrSnapshot is matched by the error of a snapshot that could not be stored.
var ErrSnapshot = errors.New("eventstore: snapshot not stored")

// Snap stores a snapshot of state as of version of stream, whatever the Policy.
func Snap[A, E any](ctx context.Context, a Aggregate[A, E], stream string, state A, version int64) error {
	if a.Snapshots == nil {
		return fmt.Errorf("%w: Aggregate.Snapshots is nil", ErrSnapshot)
	}
	n, err := snap(ctx, a, stream, state, version)
	if h := a.Hooks.OnSnapshot; h != nil {
		h(ctx, SnapshotInfo{Stream: stream, Version: version, Bytes: n, Err: err})
	}
	return err
}

func snap[A, E any](ctx context.Context, a Aggregate[A, E], stream string, state A, version int64) (int, error) {
	data, err := a.state().Marshal(state)
	if err != nil {
		return 0, fmt.Errorf("%w: %q version %d: %w", ErrSnapshot, stream, version, err)
	}
	if err := a.Snapshots.SaveSnapshot(ctx, Snapshot{Stream: stream, Version: version, Data: data}); err != nil {
		return len(data), fmt.Errorf("%w: %q version %d: %w", ErrSnapshot, stream, version, err)
	}
	return len(data), nil
}

// Encode turns typed events into Events: each one's Type is its EventType() if it implements
// Typer, otherwise typeName.
func Encode[E any](c Codec[E], typeName string, events ...E) ([]Event, error) {
	if c == nil {
		c = JSON[E]{}
	}
	out := make([]Event, len(events))
	for i, e := range events {
		data, err := c.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("eventstore: encode event %d: %w", i, err)
		}
		t := typeName
		if ty, ok := any(e).(Typer); ok {
			t = ty.EventType()
		}
		if t == "" {
			return nil, fmt.Errorf("eventstore: encode event %d: no type name (implement Typer or set the type name)", i)
		}
		out[i] = Event{Type: t, Data: data}
	}
	return out, nil
}
