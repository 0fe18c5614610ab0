package eventstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/girder-go/girder/eventbus/eventstore"
)

type added struct {
	Item string `json:"item"`
	Qty  int    `json:"qty"`
}

func (added) EventType() string { return "item.added" }

type cart struct {
	Items map[string]int `json:"items"`
	Count int            `json:"count"` // events applied, to tell a snapshot's state from a replay
}

func cartAggregate(store *eventstore.Memory, every int64) eventstore.Aggregate[cart, added] {
	return eventstore.Aggregate[cart, added]{
		Store:     store,
		Snapshots: store,
		Policy:    eventstore.SnapshotPolicy{Every: every},
		New:       func() cart { return cart{Items: map[string]int{}} },
		Apply: func(c cart, e added) cart {
			c.Items[e.Item] += e.Qty
			c.Count++
			return c
		},
	}
}

// countingStore counts the events read, to tell a load from a snapshot from a full replay.
type countingStore struct {
	*eventstore.Memory
	read int
}

func (c *countingStore) ReadStream(ctx context.Context, stream string, from int64, limit int) ([]eventstore.RecordedEvent, error) {
	evs, err := c.Memory.ReadStream(ctx, stream, from, limit)
	c.read += len(evs)
	return evs, err
}

func TestLoadSaveSnapshots(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		every      int64
		batches    []int // events per Save
		wantSnap   int64 // version of the stored snapshot, 0: none
		wantReplay int   // events Load reads
	}{
		{"no policy", 0, []int{3, 3, 3}, 0, 9},
		{"every 4, crossed inside a batch", 4, []int{3, 3, 3, 1}, 9, 1},
		{"every 3, exactly on the boundary", 3, []int{3, 3, 3}, 9, 0},
		{"every 10, never reached", 10, []int{3, 3}, 0, 6},
		{"every 1", 1, []int{1, 1, 2}, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := eventstore.NewMemory()
			agg := cartAggregate(mem, tt.every)
			if tt.every == 0 {
				agg.Snapshots = nil
			}
			state, version, err := eventstore.Load(ctx, agg, "cart-1")
			if err != nil || version != eventstore.NoStream {
				t.Fatalf("Load of a new stream = version %d, %v", version, err)
			}
			total := 0
			for _, n := range tt.batches {
				evs := make([]added, n)
				for i := range evs {
					evs[i] = added{Item: "apple", Qty: 1}
				}
				var res eventstore.AppendResult
				res, state, err = eventstore.Save(ctx, agg, "cart-1", state, version, evs...)
				if err != nil {
					t.Fatal(err)
				}
				version = res.Version
				total += n
			}
			s, ok, _ := mem.LoadSnapshot(ctx, "cart-1")
			if ok != (tt.wantSnap > 0) || s.Version != tt.wantSnap {
				t.Fatalf("snapshot at %d (ok %v), want %d", s.Version, ok, tt.wantSnap)
			}
			cs := &countingStore{Memory: mem}
			agg.Store = cs
			got, v, err := eventstore.Load(ctx, agg, "cart-1")
			if err != nil {
				t.Fatal(err)
			}
			if v != int64(total) || got.Items["apple"] != total || got.Count != total {
				t.Fatalf("Load = %+v version %d, want %d apples at version %d", got, v, total, total)
			}
			if cs.read != tt.wantReplay {
				t.Fatalf("Load read %d events, want %d", cs.read, tt.wantReplay)
			}
		})
	}
}

func TestSaveStaleVersion(t *testing.T) {
	ctx := context.Background()
	agg := cartAggregate(eventstore.NewMemory(), 0)
	s1, v1, _ := eventstore.Load(ctx, agg, "c")
	s2, v2, _ := eventstore.Load(ctx, agg, "c")
	if _, _, err := eventstore.Save(ctx, agg, "c", s1, v1, added{Item: "a", Qty: 1}); err != nil {
		t.Fatal(err)
	}
	_, _, err := eventstore.Save(ctx, agg, "c", s2, v2, added{Item: "b", Qty: 1})
	if !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("second Save = %v, want ErrVersionConflict", err)
	}
}

// A snapshot of an older state schema that no longer decodes is skipped: Load replays the
// events and reports the fallback.
func TestLoadFallsBackWhenSnapshotDoesNotDecode(t *testing.T) {
	ctx := context.Background()
	mem := eventstore.NewMemory()
	agg := cartAggregate(mem, 0)
	var st cart
	var err error
	st, v, _ := eventstore.Load(ctx, agg, "c")
	if _, st, err = eventstore.Save(ctx, agg, "c", st, v, added{Item: "a", Qty: 2}, added{Item: "b", Qty: 1}); err != nil {
		t.Fatal(err)
	}
	// The old schema stored items as a list; it cannot decode into the map.
	if err := mem.SaveSnapshot(ctx, eventstore.Snapshot{Stream: "c", Version: 2, Data: []byte(`{"items":["a","a","b"]}`)}); err != nil {
		t.Fatal(err)
	}
	var fell []eventstore.SnapshotFallbackInfo
	agg.Hooks.OnSnapshotFallback = func(_ context.Context, info eventstore.SnapshotFallbackInfo) { fell = append(fell, info) }
	got, v, err := eventstore.Load(ctx, agg, "c")
	if err != nil {
		t.Fatal(err)
	}
	if v != 2 || got.Items["a"] != 2 || got.Items["b"] != 1 || got.Count != 2 {
		t.Fatalf("Load = %+v at %d, want the replayed state %+v", got, v, st)
	}
	if len(fell) != 1 || fell[0].Version != 2 || fell[0].Err == nil {
		t.Fatalf("fallbacks = %+v, want one at version 2", fell)
	}
}

func TestAggregateValidate(t *testing.T) {
	tests := []struct {
		name string
		agg  eventstore.Aggregate[cart, added]
		ok   bool
	}{
		{"complete", cartAggregate(eventstore.NewMemory(), 5), true},
		{"empty", eventstore.Aggregate[cart, added]{}, false},
		{"policy without snapshots", func() eventstore.Aggregate[cart, added] {
			a := cartAggregate(eventstore.NewMemory(), 5)
			a.Snapshots = nil
			return a
		}(), false},
		{"negative policy", func() eventstore.Aggregate[cart, added] {
			a := cartAggregate(eventstore.NewMemory(), -1)
			return a
		}(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.agg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestEncodeNeedsATypeName(t *testing.T) {
	if _, err := eventstore.Encode[int](nil, "", 1); err == nil {
		t.Fatal("Encode of an untyped event without a type name succeeded")
	}
	evs, err := eventstore.Encode[int](nil, "n", 1, 2)
	if err != nil || len(evs) != 2 || evs[1].Type != "n" || string(evs[1].Data) != "2" {
		t.Fatalf("Encode = %+v, %v", evs, err)
	}
}

func TestMemoryClosed(t *testing.T) {
	ctx := context.Background()
	m := eventstore.NewMemory()
	done := make(chan error)
	go func() {
		done <- m.Subscribe(ctx, 0, func(context.Context, eventstore.RecordedEvent) error { return nil })
	}()
	m.Close()
	m.Close()
	if err := <-done; !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("Subscribe after Close = %v", err)
	}
	if _, err := m.Append(ctx, "s", eventstore.Any, eventstore.Event{Type: "t"}); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("Append after Close = %v", err)
	}
}
