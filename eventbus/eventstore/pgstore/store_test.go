package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/eventbus/eventstore"
	"github.com/girder-go/girder/eventbus/eventstore/eventstoretest"
	"github.com/girder-go/girder/internal/testenv"
	"github.com/jackc/pgx/v5/pgxpool"
)

var schemaSeq atomic.Int64

// newStore returns a store in a fresh schema of the shared server.
func newStore(t *testing.T, pool *pgxpool.Pool) *Store {
	t.Helper()
	s, err := New(pool, Options{Schema: fmt.Sprintf("t%d", schemaSeq.Add(1)), PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPostgres starts one PostgreSQL server for the package and runs every integration test on
// it, each in its own schema.
func TestPostgres(t *testing.T) {
	pg := testenv.StartPostgres(t)
	cfg := pg.PoolConfig(t)
	cfg.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	t.Run("Contract", func(t *testing.T) {
		eventstoretest.Run(t, func(t *testing.T) eventstore.Store { return newStore(t, pool) })
	})
	t.Run("MigrateIsIdempotent", func(t *testing.T) {
		s := newStore(t, pool)
		if err := s.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("HundredThousandEventsInOrder", func(t *testing.T) { hundredThousand(t, newStore(t, pool)) })
	t.Run("OutOfOrderCommitsAreNotSkipped", func(t *testing.T) { outOfOrder(t, newStore(t, pool)) })
	t.Run("TxProjectionExactlyOnceAndRebuild", func(t *testing.T) { exactlyOnce(t, newStore(t, pool)) })
	t.Run("OutboxSurvivesSIGKILL", func(t *testing.T) { outboxSurvivesKill(t, newStore(t, pool), pg.DSN(t)) })
}

func hundredThousand(t *testing.T, s *Store) {
	ctx := context.Background()
	const streams, batches, batch = 10, 10, 1000 // 100,000 events
	for b := range batches {
		for st := range streams {
			evs := make([]eventstore.Event, batch)
			for i := range evs {
				evs[i] = eventstore.Event{Type: "n", Data: fmt.Appendf(nil, "%d", b*batch+i)}
			}
			if _, err := s.Append(ctx, fmt.Sprintf("s-%d", st), int64(b*batch), evs...); err != nil {
				t.Fatal(err)
			}
		}
	}
	versions := map[string]int64{}
	var last int64
	n := 0
	for {
		evs, err := s.ReadAll(ctx, last+1, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			if e.Position <= last {
				t.Fatalf("position %d after %d", e.Position, last)
			}
			versions[e.Stream]++
			if e.Version != versions[e.Stream] || string(e.Data) != fmt.Sprint(e.Version-1) {
				t.Fatalf("%s: version %d data %s, want version %d", e.Stream, e.Version, e.Data, versions[e.Stream])
			}
			last = e.Position
			n++
		}
	}
	if n != streams*batches*batch {
		t.Fatalf("read %d events, want %d", n, streams*batches*batch)
	}
}

// outOfOrder makes the classic gap: transaction "slow" takes its positions first and holds its
// commit while "fast" appends. Without the advisory lock, fast would take a larger position and
// commit first, and a subscriber past it would skip slow's events. With it, fast waits, and the
// subscriber sees slow's events and then fast's, each once.
func outOfOrder(t *testing.T, s *Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	entered, release := make(chan struct{}), make(chan struct{})
	s.beforeCommit = func(_ context.Context, stream string) {
		if stream == "slow" {
			close(entered)
			<-release
		}
	}
	seen := make(chan eventstore.RecordedEvent, 100)
	sctx, stop := context.WithCancel(ctx)
	subDone := make(chan error, 1)
	go func() {
		subDone <- s.Subscribe(sctx, 0, func(_ context.Context, e eventstore.RecordedEvent) error {
			seen <- e
			return nil
		})
	}()
	if _, err := s.Append(ctx, "before", eventstore.NoStream, eventstore.Event{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var slowRes, fastRes eventstore.AppendResult
	var slowErr, fastErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		slowRes, slowErr = s.Append(ctx, "slow", eventstore.NoStream, eventstore.Event{Type: "a"}, eventstore.Event{Type: "b"})
	}()
	<-entered
	fastDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(fastDone)
		fastRes, fastErr = s.Append(ctx, "fast", eventstore.NoStream, eventstore.Event{Type: "c"})
	}()
	select {
	case <-fastDone:
		t.Fatal("fast Append committed while slow held its positions uncommitted")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	if slowErr != nil || fastErr != nil {
		t.Fatal(slowErr, fastErr)
	}
	if fastRes.Position <= slowRes.Position {
		t.Fatalf("fast position %d not after slow %d", fastRes.Position, slowRes.Position)
	}
	want := []string{"before/x", "slow/a", "slow/b", "fast/c"}
	var last int64
	for i, w := range want {
		select {
		case e := <-seen:
			if got := e.Stream + "/" + e.Type; got != w || e.Position <= last {
				t.Fatalf("event %d = %s at %d, want %s after %d", i, got, e.Position, w, last)
			}
			last = e.Position
		case <-ctx.Done():
			t.Fatalf("subscriber saw %d of %d events", i, len(want))
		}
	}
	stop()
	if err := <-subDone; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	select {
	case e := <-seen:
		t.Fatalf("extra event %+v", e)
	default:
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"zero", Options{}, true},
		{"schema", Options{Schema: "orders_1"}, true},
		{"injected schema", Options{Schema: "x; DROP TABLE y"}, false},
		{"negative poll", Options{PollInterval: -1}, false},
		{"negative batch", Options{BatchSize: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.opts.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tt.ok)
			}
		})
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}
