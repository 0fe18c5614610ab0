// Package eventstoretest is the contract every girder event store passes: the in-memory store
// and the PostgreSQL store run the same suite, so an application can move from one to the other
// without its aggregates, projections or subscribers noticing.
//
// A store's test calls Run with a function returning a fresh, empty store; Run gives each
// property its own subtest:
//
//   - AppendExpectedVersion: table of expected versions (Any, NoStream, exact, stale, ahead)
//     against streams of 0 and 2 events; a refused Append returns a *VersionConflictError
//     matching ErrVersionConflict with the stream's actual version, and writes nothing;
//   - ConcurrentAppendersOneStream: 16 goroutines append to one stream with the version they
//     read; each version is written exactly once, every loser gets ErrVersionConflict;
//   - ReadStreamAndReadAll: versions are gap-free per stream, positions increase across
//     streams, fromVersion/fromPosition and limit select the right window;
//   - SubscribeCatchUpThenLive: a subscriber from 0 started while appends run sees every event
//     exactly once, in position order, and one started from a position sees only what follows;
//   - SubscribeHandlerError: a handler's error ends Subscribe with a *HandlerError naming the
//     event;
//   - Snapshots: the latest snapshot wins, an older one does not replace it.
package eventstoretest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/girder-go/girder/eventbus/eventstore"
)

// Run runs the contract against stores made by newStore. If the store also implements
// eventstore.SnapshotStore, the snapshot properties run too.
func Run(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	t.Run("AppendExpectedVersion", func(t *testing.T) { appendExpected(t, newStore) })
	t.Run("ConcurrentAppendersOneStream", func(t *testing.T) { concurrentAppenders(t, newStore(t)) })
	t.Run("ReadStreamAndReadAll", func(t *testing.T) { reads(t, newStore(t)) })
	t.Run("SubscribeCatchUpThenLive", func(t *testing.T) { subscribe(t, newStore(t)) })
	t.Run("SubscribeHandlerError", func(t *testing.T) { subscribeError(t, newStore(t)) })
	t.Run("Snapshots", func(t *testing.T) {
		ss, ok := newStore(t).(eventstore.SnapshotStore)
		if !ok {
			t.Skip("store has no snapshots")
		}
		snapshots(t, ss)
	})
}

func ev(typ string, i int) eventstore.Event {
	return eventstore.Event{Type: typ, Data: fmt.Appendf(nil, `{"n":%d}`, i)}
}

func appendExpected(t *testing.T, newStore func(t *testing.T) eventstore.Store) {
	ctx := context.Background()
	tests := []struct {
		name     string
		existing int
		expected int64
		conflict bool
		want     int64 // version after a successful Append of one event
	}{
		{"any on new stream", 0, eventstore.Any, false, 1},
		{"any on existing stream", 2, eventstore.Any, false, 3},
		{"no stream on new stream", 0, eventstore.NoStream, false, 1},
		{"no stream on existing stream", 2, eventstore.NoStream, true, 0},
		{"exact version", 2, 2, false, 3},
		{"stale version", 2, 1, true, 0},
		{"version ahead", 2, 5, true, 0},
		{"version on new stream", 0, 1, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			for i := range tt.existing {
				if _, err := s.Append(ctx, "s-1", eventstore.Any, ev("seed", i)); err != nil {
					t.Fatal(err)
				}
			}
			res, err := s.Append(ctx, "s-1", tt.expected, ev("try", 0))
			if tt.conflict {
				var vc *eventstore.VersionConflictError
				if !errors.Is(err, eventstore.ErrVersionConflict) || !errors.As(err, &vc) {
					t.Fatalf("Append: err = %v, want a *VersionConflictError", err)
				}
				if vc.Stream != "s-1" || vc.Expected != tt.expected || vc.Actual != int64(tt.existing) {
					t.Fatalf("conflict = %+v, want stream s-1 expected %d actual %d", *vc, tt.expected, tt.existing)
				}
				got, _ := s.ReadStream(ctx, "s-1", 0, 0)
				if len(got) != tt.existing {
					t.Fatalf("refused Append wrote: stream has %d events, want %d", len(got), tt.existing)
				}
				return
			}
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if res.Version != tt.want {
				t.Fatalf("version = %d, want %d", res.Version, tt.want)
			}
		})
	}
	t.Run("invalid arguments", func(t *testing.T) {
		s := newStore(t)
		for _, tc := range []struct {
			stream   string
			expected int64
			events   []eventstore.Event
		}{
			{"", eventstore.Any, []eventstore.Event{ev("a", 1)}},
			{"s", -7, []eventstore.Event{ev("a", 1)}},
			{"s", eventstore.Any, nil},
			{"s", eventstore.Any, []eventstore.Event{{Data: []byte("{}")}}},
		} {
			if _, err := s.Append(ctx, tc.stream, tc.expected, tc.events...); err == nil {
				t.Errorf("Append(%q, %d, %d events) succeeded, want an error", tc.stream, tc.expected, len(tc.events))
			}
		}
	})
}

func concurrentAppenders(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	const writers, rounds = 16, 8
	var (
		mu        sync.Mutex
		wins      = map[int64]int{} // version → writer
		conflicts int
		wg        sync.WaitGroup
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				cur, err := s.ReadStream(ctx, "race", 0, 0)
				if err != nil {
					t.Error(err)
					return
				}
				res, err := s.Append(ctx, "race", int64(len(cur)), ev(fmt.Sprintf("w%d", w), r))
				mu.Lock()
				switch {
				case err == nil:
					if prev, dup := wins[res.Version]; dup {
						t.Errorf("version %d written by writers %d and %d", res.Version, prev, w)
					}
					wins[res.Version] = w
				case errors.Is(err, eventstore.ErrVersionConflict):
					conflicts++
				default:
					t.Errorf("writer %d: %v", w, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got, err := s.ReadStream(ctx, "race", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(wins) || len(wins)+conflicts != writers*rounds {
		t.Fatalf("%d events stored, %d wins, %d conflicts, %d attempts", len(got), len(wins), conflicts, writers*rounds)
	}
	for i, e := range got {
		if e.Version != int64(i+1) || e.Type != fmt.Sprintf("w%d", wins[e.Version]) {
			t.Fatalf("event %d: version %d type %s, winner of that version was w%d", i, e.Version, e.Type, wins[e.Version])
		}
	}
}

// reads checks ReadAll and ReadStream over three interleaved streams.
func reads(t *testing.T, s eventstore.Store) {
	ctx := context.Background()
	appendInterleaved(t, s)
	all, err := s.ReadAll(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkReadAll(t, all)
	readStreams(t, s)
	t.Run("ReadAll window", func(t *testing.T) {
		got, err := s.ReadAll(ctx, all[3].Position, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 4 || got[0].Position != all[3].Position || got[3].Position != all[6].Position {
			t.Fatalf("ReadAll(from %d, 4) = %d events from %d", all[3].Position, len(got), got[0].Position)
		}
	})
}

// appendInterleaved appends to three streams in turn: a gets 5 events, b 3, c 2 (a batch of
// two); the first event of each batch carries metadata k=stream.
func appendInterleaved(t *testing.T, s eventstore.Store) {
	plan := []struct {
		stream string
		n      int
	}{{"a", 2}, {"b", 1}, {"a", 1}, {"c", 2}, {"b", 2}, {"a", 2}}
	for i, p := range plan {
		evs := make([]eventstore.Event, p.n)
		for j := range evs {
			evs[j] = ev(p.stream, i*10+j)
		}
		evs[0].Metadata = map[string]string{"k": p.stream}
		if _, err := s.Append(context.Background(), p.stream, eventstore.Any, evs...); err != nil {
			t.Fatal(err)
		}
	}
}

// checkReadAll checks ReadAll's view of appendInterleaved's events: all ten, positions
// increasing, each stream's versions without gaps, type, time and metadata stored.
func checkReadAll(t *testing.T, all []eventstore.RecordedEvent) {
	if len(all) != 10 {
		t.Fatalf("ReadAll: %d events, want 10", len(all))
	}
	versions := map[string]int64{}
	for i, e := range all {
		if i > 0 && e.Position <= all[i-1].Position {
			t.Fatalf("positions not increasing: %d after %d", e.Position, all[i-1].Position)
		}
		versions[e.Stream]++
		if e.Version != versions[e.Stream] {
			t.Fatalf("stream %s: version %d, want %d (gap)", e.Stream, e.Version, versions[e.Stream])
		}
		if e.Type != e.Stream || e.Time.IsZero() {
			t.Fatalf("event %+v: type or time not stored", e)
		}
	}
	if all[0].Metadata["k"] != "a" {
		t.Fatalf("metadata = %v, want k=a", all[0].Metadata)
	}
}

// readStreams checks ReadStream's windows over appendInterleaved's streams.
func readStreams(t *testing.T, s eventstore.Store) {
	tests := []struct {
		name        string
		stream      string
		from        int64
		limit       int
		wantVersion []int64
	}{
		{"whole stream", "a", 0, 0, []int64{1, 2, 3, 4, 5}},
		{"from version", "a", 3, 0, []int64{3, 4, 5}},
		{"from version with limit", "a", 2, 2, []int64{2, 3}},
		{"past the end", "a", 6, 0, nil},
		{"unknown stream", "zzz", 0, 0, nil},
		{"other stream", "b", 1, 10, []int64{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ReadStream(context.Background(), tt.stream, tt.from, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var vs []int64
			for _, e := range got {
				if e.Stream != tt.stream {
					t.Fatalf("event of stream %s in %s", e.Stream, tt.stream)
				}
				vs = append(vs, e.Version)
			}
			if fmt.Sprint(vs) != fmt.Sprint(tt.wantVersion) {
				t.Fatalf("versions %v, want %v", vs, tt.wantVersion)
			}
		})
	}
}

func subscribe(t *testing.T, s eventstore.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const writers, each = 4, 50
	// Some events before the subscriber starts (catch-up), the rest while it runs (live).
	for i := range 20 {
		if _, err := s.Append(ctx, "pre", eventstore.Any, ev("pre", i)); err != nil {
			t.Fatal(err)
		}
	}
	total := 20 + writers*each
	got := make(chan eventstore.RecordedEvent, total+10)
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.Subscribe(sctx, 0, func(_ context.Context, e eventstore.RecordedEvent) error {
			got <- e
			return nil
		})
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Append(ctx, fmt.Sprintf("w-%d", w), eventstore.Any, ev("live", i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	all, err := s.ReadAll(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range total {
		select {
		case e := <-got:
			if e.Position != all[i].Position || e.Stream != all[i].Stream || e.Version != all[i].Version {
				t.Fatalf("subscriber event %d: position %d (%s v%d), want position %d (%s v%d)",
					i, e.Position, e.Stream, e.Version, all[i].Position, all[i].Stream, all[i].Version)
			}
		case <-ctx.Done():
			t.Fatalf("subscriber saw %d of %d events", i, total)
		}
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe returned %v, want context.Canceled", err)
	}
	select {
	case e := <-got:
		t.Fatalf("extra event delivered: position %d", e.Position)
	default:
	}

	// From a position: only what follows.
	from := all[len(all)-3].Position
	var tail []int64
	tctx, tstop := context.WithCancel(ctx)
	err = s.Subscribe(tctx, from, func(_ context.Context, e eventstore.RecordedEvent) error {
		tail = append(tail, e.Position)
		if len(tail) == 3 {
			tstop()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || len(tail) != 3 || tail[0] != from {
		t.Fatalf("Subscribe from %d: %v, positions %v", from, err, tail)
	}
}

func subscribeError(t *testing.T, s eventstore.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 3 {
		if _, err := s.Append(ctx, "x", eventstore.Any, ev("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("boom")
	err := s.Subscribe(ctx, 0, func(_ context.Context, e eventstore.RecordedEvent) error {
		if e.Version == 2 {
			return boom
		}
		return nil
	})
	var he *eventstore.HandlerError
	if !errors.Is(err, boom) || !errors.As(err, &he) || he.Event.Version != 2 || he.Event.Stream != "x" {
		t.Fatalf("Subscribe = %v, want a *HandlerError at x v2 wrapping boom", err)
	}
}

func snapshots(t *testing.T, s eventstore.SnapshotStore) {
	ctx := context.Background()
	if _, ok, err := s.LoadSnapshot(ctx, "agg"); err != nil || ok {
		t.Fatalf("LoadSnapshot of nothing = ok %v, %v", ok, err)
	}
	for _, v := range []int64{10, 30, 20} {
		if err := s.SaveSnapshot(ctx, eventstore.Snapshot{Stream: "agg", Version: v, Data: fmt.Appendf(nil, `"v%d"`, v)}); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.LoadSnapshot(ctx, "agg")
	if err != nil || !ok || got.Version != 30 || string(got.Data) != `"v30"` || got.Time.IsZero() {
		t.Fatalf("LoadSnapshot = %+v ok %v err %v, want version 30", got, ok, err)
	}
}
