package eventstore

import (
	"context"
	"maps"
	"sync"
	"time"
)

// Memory is an in-memory Store and SnapshotStore: for tests, examples and single-process
// applications that rebuild their state at start. Safe for concurrent use; the zero value is not
// usable (call NewMemory). Close only releases, so it takes no ctx: after it every method
// returns ErrClosed.
//
// Append takes one lock and copies the events (an allocation per event); reads take the same
// lock and copy out what they return. Positions are assigned under the lock, so they are
// committed in order and a subscriber never sees a gap.
type Memory struct {
	mu          sync.Mutex
	all         []RecordedEvent
	streams     map[string][]int // stream → indexes into all, by version
	snaps       map[string]Snapshot
	checkpoints map[string]int64
	wake        chan struct{} // closed and replaced on each Append
	closed      bool
	now         func() time.Time
}

var (
	_ Store           = (*Memory)(nil)
	_ SnapshotStore   = (*Memory)(nil)
	_ CheckpointStore = (*Memory)(nil)
)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{streams: map[string][]int{}, snaps: map[string]Snapshot{}, checkpoints: map[string]int64{}, wake: make(chan struct{}), now: time.Now}
}

// Append implements Store. Cost: one lock and a copy of the events.
func (m *Memory) Append(ctx context.Context, stream string, expected int64, events ...Event) (AppendResult, error) {
	if err := ValidateAppend(stream, expected, events); err != nil {
		return AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return AppendResult{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return AppendResult{}, ErrClosed
	}
	idx := m.streams[stream]
	version := int64(len(idx))
	if err := CheckExpected(stream, expected, version); err != nil {
		return AppendResult{}, err
	}
	now := m.now()
	for _, e := range events {
		version++
		idx = append(idx, len(m.all))
		m.all = append(m.all, RecordedEvent{
			Stream: stream, Version: version, Position: int64(len(m.all)) + 1,
			Type: e.Type, Data: clone(e.Data), Metadata: maps.Clone(e.Metadata), Time: now,
		})
	}
	m.streams[stream] = idx
	close(m.wake)
	m.wake = make(chan struct{})
	return AppendResult{Version: version, Position: int64(len(m.all))}, nil
}

// ReadStream implements Store. Cost: one lock and a copy of the slice returned.
func (m *Memory) ReadStream(ctx context.Context, stream string, fromVersion int64, limit int) ([]RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	idx := m.streams[stream]
	start := max(fromVersion, 1) - 1
	if start >= int64(len(idx)) {
		return nil, nil
	}
	idx = idx[start:]
	if limit > 0 && len(idx) > limit {
		idx = idx[:limit]
	}
	out := make([]RecordedEvent, len(idx))
	for i, j := range idx {
		out[i] = m.all[j]
	}
	return out, nil
}

// ReadAll implements Store. Cost: one lock and a copy of the slice returned.
func (m *Memory) ReadAll(ctx context.Context, fromPosition int64, limit int) ([]RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	out, _ := m.readAllLocked(fromPosition, limit)
	return out, nil
}

func (m *Memory) readAllLocked(fromPosition int64, limit int) ([]RecordedEvent, <-chan struct{}) {
	start := max(fromPosition, 1) - 1
	if start >= int64(len(m.all)) {
		return nil, m.wake
	}
	evs := m.all[start:]
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	return append([]RecordedEvent(nil), evs...), m.wake
}

// subscribeBatch is how many events a subscription copies out per lock.
const subscribeBatch = 256

// Subscribe implements Store: it reads in batches, and once caught up waits for the next Append
// (no polling). It returns ErrClosed when the store is closed.
func (m *Memory) Subscribe(ctx context.Context, fromPosition int64, h Handler) error {
	next := max(fromPosition, 1)
	for {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return ErrClosed
		}
		batch, wake := m.readAllLocked(next, subscribeBatch)
		m.mu.Unlock()
		for _, e := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := h(ctx, e); err != nil {
				return &HandlerError{Event: e, Err: err}
			}
			next = e.Position + 1
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// SaveSnapshot implements SnapshotStore.
func (m *Memory) SaveSnapshot(ctx context.Context, s Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if old, ok := m.snaps[s.Stream]; ok && old.Version > s.Version {
		return nil
	}
	s.Data = clone(s.Data)
	if s.Time.IsZero() {
		s.Time = m.now()
	}
	m.snaps[s.Stream] = s
	return nil
}

// LoadSnapshot implements SnapshotStore.
func (m *Memory) LoadSnapshot(ctx context.Context, stream string) (Snapshot, bool, error) {
	if err := ctx.Err(); err != nil {
		return Snapshot{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Snapshot{}, false, ErrClosed
	}
	s, ok := m.snaps[stream]
	s.Data = clone(s.Data)
	return s, ok, nil
}

// Close makes every later call fail with ErrClosed and ends running subscriptions (they return
// ErrClosed). Idempotent.
func (m *Memory) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		m.closed = true
		close(m.wake)
	}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// LoadCheckpoint implements CheckpointStore.
func (m *Memory) LoadCheckpoint(ctx context.Context, name string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, ErrClosed
	}
	return m.checkpoints[name], nil
}

// SaveCheckpoint implements CheckpointStore.
func (m *Memory) SaveCheckpoint(ctx context.Context, name string, next int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.checkpoints[name] = next
	return nil
}
