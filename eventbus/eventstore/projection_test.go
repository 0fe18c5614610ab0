package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventstore"
)

// totals is a read model: the sum of each stream's amounts.
type totals struct {
	mu sync.Mutex
	m  map[string]int
	n  int // events handled
}

func (r *totals) handle(_ context.Context, e eventstore.RecordedEvent) error {
	var v struct{ Amount int }
	if _, err := fmt.Sscanf(string(e.Data), `{"Amount":%d}`, &v.Amount); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[e.Stream] += v.Amount
	r.n++
	return nil
}

func (r *totals) snapshot() (map[string]int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.m), r.n
}

func appendAmounts(t *testing.T, s eventstore.Store, n int) {
	t.Helper()
	for i := range n {
		e := eventstore.Event{Type: "amount", Data: fmt.Appendf(nil, `{"Amount":%d}`, i+1)}
		if _, err := s.Append(context.Background(), fmt.Sprintf("acct-%d", i%3), eventstore.Any, e); err != nil {
			t.Fatal(err)
		}
	}
}

// runUntil runs p until its read model has handled want events.
func runUntil(t *testing.T, p eventstore.Projection, r *totals, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	for {
		if _, n := r.snapshot(); n >= want {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended early: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
}

func TestProjectionResumesAndRebuilds(t *testing.T) {
	mem := eventstore.NewMemory()
	live := &totals{m: map[string]int{}}
	p := eventstore.Projection{Name: "totals", Store: mem, Checkpoints: mem, Handle: live.handle}

	appendAmounts(t, mem, 10)
	runUntil(t, p, live, 10)
	if next, _ := mem.LoadCheckpoint(context.Background(), "totals"); next != 11 {
		t.Fatalf("checkpoint after 10 events = %d, want 11", next)
	}
	// Restarted: only the new events.
	appendAmounts(t, mem, 5)
	runUntil(t, p, live, 15)
	got, n := live.snapshot()
	if n != 15 {
		t.Fatalf("handled %d events, want 15 (no redelivery after a clean stop)", n)
	}

	// Rebuild from 0 into a fresh read model equals the live one.
	rebuilt := &totals{m: map[string]int{}}
	p.Handle = rebuilt.handle
	if err := p.Rebuild(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	runUntil(t, p, rebuilt, 15)
	if again, _ := rebuilt.snapshot(); !maps.Equal(again, got) {
		t.Fatalf("rebuilt %v, live %v", again, got)
	}
}

// A handler failing stops Run with the checkpoint before the failed event: at least once.
func TestProjectionAtLeastOnce(t *testing.T) {
	mem := eventstore.NewMemory()
	appendAmounts(t, mem, 5)
	var seen []int64
	fail := true
	p := eventstore.Projection{Name: "p", Store: mem, Checkpoints: mem, Handle: func(_ context.Context, e eventstore.RecordedEvent) error {
		if e.Position == 3 && fail {
			fail = false
			return errors.New("read model down")
		}
		seen = append(seen, e.Position)
		return nil
	}}
	err := p.Run(context.Background())
	var he *eventstore.HandlerError
	if !errors.As(err, &he) || he.Event.Position != 3 {
		t.Fatalf("Run = %v, want a *HandlerError at position 3", err)
	}
	if next, _ := mem.LoadCheckpoint(context.Background(), "p"); next != 3 {
		t.Fatalf("checkpoint = %d, want 3", next)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.Handle = func(_ context.Context, e eventstore.RecordedEvent) error {
		seen = append(seen, e.Position)
		if e.Position == 5 {
			cancel()
		}
		return nil
	}
	_ = p.Run(ctx)
	if fmt.Sprint(seen) != "[1 2 3 4 5]" {
		t.Fatalf("positions handled %v", seen)
	}
}

func TestProjectionValidate(t *testing.T) {
	if err := (eventstore.Projection{}).Run(context.Background()); err == nil {
		t.Fatal("Run of an empty Projection succeeded")
	}
	if err := (eventstore.Projection{Name: "x", SaveEvery: -1}).Validate(); err == nil {
		t.Fatal("negative SaveEvery accepted")
	}
}

// An Outbox reports every missing field at once, each prefixed as its own.
func TestOutboxValidate(t *testing.T) {
	err := (eventstore.Outbox[int]{SaveEvery: -1}).Run(context.Background())
	want := "eventstore: Outbox: Name is empty\n" +
		"eventstore: Outbox: Store is nil\n" +
		"eventstore: Outbox: Checkpoints is nil\n" +
		"eventstore: Outbox: Publisher is nil\n" +
		"eventstore: Outbox: SaveEvery -1 is negative"
	if err == nil || err.Error() != want {
		t.Fatalf("Run of an empty Outbox: %v, want\n%s", err, want)
	}
}

// The outbox publishes stored events to an eventbus topic, in order per stream, with the
// stored event on the publisher's ctx.
func TestOutboxToBus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mem := eventstore.NewMemory()
	appendAmounts(t, mem, 9)
	bus, err := eventbus.New(eventbus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(ctx)
	topic, err := eventbus.NewTopic[struct{ Amount int }](bus, "amounts")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if _, err := topic.Subscribe(func(ctx context.Context, e struct{ Amount int }) error {
		re, ok := eventstore.Recorded(ctx)
		if !ok {
			return errors.New("no recorded event on ctx")
		}
		got = append(got, fmt.Sprintf("%s/%d=%d", re.Stream, re.Version, e.Amount))
		if len(got) == 9 {
			cancel()
		}
		return nil
	}, eventbus.SubscribeOptions[struct{ Amount int }]{}); err != nil {
		t.Fatal(err)
	}
	ob := eventstore.Outbox[struct{ Amount int }]{Name: "bus", Store: mem, Checkpoints: mem, Publisher: topic}
	if err := ob.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	want := "[acct-0/1=1 acct-1/1=2 acct-2/1=3 acct-0/2=4 acct-1/2=5 acct-2/2=6 acct-0/3=7 acct-1/3=8 acct-2/3=9]"
	if fmt.Sprint(got) != want {
		t.Fatalf("published %v", got)
	}
}
