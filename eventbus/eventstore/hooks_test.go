package eventstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/girder-go/girder/eventbus/eventstore"
)

// recorder keeps every hook call, in order.
type recorder struct {
	mu          sync.Mutex
	appends     []eventstore.AppendInfo
	conflicts   []eventstore.ConflictInfo
	loads       []eventstore.LoadInfo
	snaps       []eventstore.SnapshotInfo
	fallbacks   []eventstore.SnapshotFallbackInfo
	projected   []eventstore.ProjectInfo
	checkpoints []eventstore.CheckpointInfo
}

func (r *recorder) hooks() eventstore.Hooks {
	lock := func() func() { r.mu.Lock(); return r.mu.Unlock }
	return eventstore.Hooks{
		OnAppend: func(_ context.Context, i eventstore.AppendInfo) { defer lock()(); r.appends = append(r.appends, i) },
		OnConflict: func(_ context.Context, i eventstore.ConflictInfo) {
			defer lock()()
			r.conflicts = append(r.conflicts, i)
		},
		OnLoad:     func(_ context.Context, i eventstore.LoadInfo) { defer lock()(); r.loads = append(r.loads, i) },
		OnSnapshot: func(_ context.Context, i eventstore.SnapshotInfo) { defer lock()(); r.snaps = append(r.snaps, i) },
		OnSnapshotFallback: func(_ context.Context, i eventstore.SnapshotFallbackInfo) {
			defer lock()()
			r.fallbacks = append(r.fallbacks, i)
		},
		OnProject: func(_ context.Context, i eventstore.ProjectInfo) {
			defer lock()()
			r.projected = append(r.projected, i)
		},
		OnCheckpoint: func(_ context.Context, i eventstore.CheckpointInfo) {
			defer lock()()
			r.checkpoints = append(r.checkpoints, i)
		},
	}
}

func TestAggregateHooks(t *testing.T) {
	ctx := context.Background()
	mem := eventstore.NewMemory()
	var rec recorder
	agg := cartAggregate(mem, 3)
	agg.Hooks = rec.hooks()

	// Two events, then two more: the second Save crosses version 3 and takes a snapshot at 4.
	_, v, err := eventstore.Load(ctx, agg, "cart-1")
	if err != nil {
		t.Fatal(err)
	}
	_, st, err := eventstore.Save(ctx, agg, "cart-1", agg.New(), v, added{"tea", 1}, added{"jam", 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := eventstore.Save(ctx, agg, "cart-1", st, 2, added{"tea", 1}, added{"oat", 2}); err != nil {
		t.Fatal(err)
	}
	// A stale Save: the stream is at 4, not 2.
	if _, _, err := eventstore.Save(ctx, agg, "cart-1", st, 2, added{"tea", 1}); !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("stale Save = %v, want a version conflict", err)
	}
	if _, _, err := eventstore.Save(ctx, agg, "cart-1", st, 4, added{"jam", 1}); err != nil {
		t.Fatal(err)
	}
	if _, v, err = eventstore.Load(ctx, agg, "cart-1"); err != nil || v != 5 {
		t.Fatalf("Load = version %d, %v; want 5", v, err)
	}

	if len(rec.appends) != 4 {
		t.Fatalf("OnAppend called %d times, want 4: %+v", len(rec.appends), rec.appends)
	}
	a := rec.appends[1]
	if a.Stream != "cart-1" || a.Expected != 2 || a.Events != 2 || a.Result.Version != 4 || a.Err != nil || a.Took <= 0 {
		t.Errorf("second append = %+v", a)
	}
	if a := rec.appends[2]; !errors.Is(a.Err, eventstore.ErrVersionConflict) || a.Result.Version != 0 {
		t.Errorf("stale append = %+v, want its conflict", a)
	}
	if len(rec.conflicts) != 1 || rec.conflicts[0] != (eventstore.ConflictInfo{Stream: "cart-1", Expected: 2, Actual: 4}) {
		t.Errorf("OnConflict = %+v", rec.conflicts)
	}
	if len(rec.snaps) != 1 || rec.snaps[0].Version != 4 || rec.snaps[0].Bytes == 0 || rec.snaps[0].Err != nil {
		t.Errorf("OnSnapshot = %+v, want one snapshot at version 4", rec.snaps)
	}
	if len(rec.loads) != 2 {
		t.Fatalf("OnLoad called %d times, want 2", len(rec.loads))
	}
	if l := rec.loads[0]; l.Version != eventstore.NoStream || l.SnapshotVersion != 0 || l.Replayed != 0 || l.Err != nil {
		t.Errorf("load of an empty stream = %+v", l)
	}
	if l := rec.loads[1]; l.Version != 5 || l.SnapshotVersion != 4 || l.Replayed != 1 || l.Err != nil || l.Took <= 0 {
		t.Errorf("load after the snapshot = %+v, want version 5 from the snapshot at 4 plus 1 event", l)
	}
	if len(rec.fallbacks) != 0 {
		t.Errorf("OnSnapshotFallback = %+v, want none", rec.fallbacks)
	}

	// A snapshot that no longer decodes: Load replays everything and reports both.
	if err := mem.SaveSnapshot(ctx, eventstore.Snapshot{Stream: "cart-1", Version: 5, Data: []byte(`{"items":[1]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := eventstore.Load(ctx, agg, "cart-1"); err != nil {
		t.Fatal(err)
	}
	if len(rec.fallbacks) != 1 || rec.fallbacks[0].Version != 5 || rec.fallbacks[0].Err == nil {
		t.Errorf("OnSnapshotFallback = %+v", rec.fallbacks)
	}
	if l := rec.loads[2]; l.SnapshotVersion != 0 || l.Replayed != 5 {
		t.Errorf("load past a broken snapshot = %+v, want 5 events replayed from New", l)
	}
}

func TestLoadHookReportsErrors(t *testing.T) {
	mem := eventstore.NewMemory()
	var rec recorder
	agg := cartAggregate(mem, 0)
	agg.Hooks = rec.hooks()
	mem.Close()
	if _, _, err := eventstore.Load(context.Background(), agg, "cart-1"); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("Load = %v", err)
	}
	if len(rec.loads) != 1 || !errors.Is(rec.loads[0].Err, eventstore.ErrClosed) {
		t.Errorf("OnLoad = %+v, want the error", rec.loads)
	}
}

func TestProjectionHooks(t *testing.T) {
	mem := eventstore.NewMemory()
	appendAmounts(t, mem, 5)
	var rec recorder
	r := &totals{m: map[string]int{}}
	p := eventstore.Projection{Name: "totals", Store: mem, Checkpoints: mem, Handle: r.handle, SaveEvery: 2, Hooks: rec.hooks()}
	runUntil(t, p, r, 5)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.projected) != 5 {
		t.Fatalf("OnProject called %d times, want 5", len(rec.projected))
	}
	for i, pi := range rec.projected {
		if pi.Projection != "totals" || pi.Event.Position != int64(i+1) || pi.Err != nil || pi.Took <= 0 {
			t.Errorf("OnProject %d = %+v", i, pi)
		}
	}
	// Saved after events 2 and 4, then the rest (5) when Run ends.
	var nexts []int64
	for _, c := range rec.checkpoints {
		if c.Projection != "totals" || c.Err != nil {
			t.Errorf("OnCheckpoint = %+v", c)
		}
		nexts = append(nexts, c.Next)
	}
	if want := []int64{3, 5, 6}; !equal(nexts, want) {
		t.Errorf("checkpoints saved at %v, want %v", nexts, want)
	}
	if len(rec.appends)+len(rec.loads) != 0 {
		t.Error("a projection called aggregate hooks")
	}
}

func TestProjectionHookSeesHandlerError(t *testing.T) {
	mem := eventstore.NewMemory()
	appendAmounts(t, mem, 3)
	var rec recorder
	boom := errors.New("boom")
	p := eventstore.Projection{Name: "p", Store: mem, Checkpoints: mem, Hooks: rec.hooks(),
		Handle: func(_ context.Context, e eventstore.RecordedEvent) error {
			if e.Position == 2 {
				return boom
			}
			return nil
		}}
	if err := p.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Run = %v", err)
	}
	if len(rec.projected) != 2 || rec.projected[0].Err != nil || !errors.Is(rec.projected[1].Err, boom) {
		t.Errorf("OnProject = %+v, want event 1 ok and event 2 failed", rec.projected)
	}
	if len(rec.checkpoints) != 1 || rec.checkpoints[0].Next != 2 {
		t.Errorf("OnCheckpoint = %+v, want one save resuming at 2", rec.checkpoints)
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
