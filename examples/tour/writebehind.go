package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/writebehind"
)

func init() {
	register(chapter{
		name:  "writebehind",
		title: "write-behind: answer at cache speed, write the database later, lose nothing",
		run:   writebehindTour,
	})
}

// writebehindDB is the tour's database: a map behind a round trip, which can be made to fail.
type writebehindDB struct {
	mu    sync.Mutex
	rows  map[string]string
	trips int
	down  atomic.Bool
}

var errWritebehindDown = errors.New("database unreachable")

func (db *writebehindDB) WriteBatch(_ context.Context, writes []cache.Write[string, string]) error {
	if db.down.Load() {
		return errWritebehindDown
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.trips++
	for _, w := range writes {
		if w.Delete {
			delete(db.rows, w.Key)
		} else {
			db.rows[w.Key] = w.Value
		}
	}
	return nil
}

func (db *writebehindDB) Write(ctx context.Context, k, v string) error {
	return db.WriteBatch(ctx, []cache.Write[string, string]{{Key: k, Value: v}})
}

func (db *writebehindDB) Delete(ctx context.Context, k string) error {
	return db.WriteBatch(ctx, []cache.Write[string, string]{{Key: k, Delete: true}})
}

func (db *writebehindDB) String() string {
	db.mu.Lock()
	defer db.mu.Unlock()
	var rows []string
	for _, k := range slices.Sorted(maps.Keys(db.rows)) {
		rows = append(rows, k+"="+db.rows[k])
	}
	return fmt.Sprintf("%v (%d round trips)", rows, db.trips)
}

func writebehindTour(ctx context.Context, w io.Writer) error {
	if err := writebehindCoalescing(ctx, w); err != nil {
		return err
	}
	return writebehindJournal(ctx, w)
}

// writebehindCoalescing: a Cache whose Writer is a WriteBehind.
func writebehindCoalescing(ctx context.Context, w io.Writer) error {
	db := &writebehindDB{rows: map[string]string{}}
	wb, err := writebehind.New(writebehind.Options[string, string]{Store: db, Delay: time.Minute})
	if err != nil {
		return err
	}
	mem, err := cache.NewMemory(cache.MemoryOptions[string, string]{})
	if err != nil {
		return err
	}
	defer mem.Close()
	users, err := cache.New(cache.Options[string, string]{Levels: []cache.Level[string, string]{{Store: mem}}, Writer: wb})
	if err != nil {
		return err
	}
	defer users.Close()

	fmt.Fprintln(w, "A Cache whose Writer is a WriteBehind: Set returns once the write is queued.")
	for i := range 100 {
		if err := users.Set(ctx, "user:1", fmt.Sprintf("visits=%d", i+1)); err != nil {
			return err
		}
	}
	if err := users.Set(ctx, "user:2", "new"); err != nil {
		return err
	}
	v, err := users.Get(ctx, "user:1")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  101 Sets later the cache answers %q; the database holds %v\n", v, db)
	if err := wb.Flush(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "  Flush: the database holds %v: 100 writes of user:1 coalesced into one\n", db)
	return wb.Close(ctx)
}

// writebehindJournal: with a Journal on Redis Streams, what a process did not write survives it.
func writebehindJournal(ctx context.Context, w io.Writer) error {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return err
	}
	defer m.Close()
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	db := &writebehindDB{rows: map[string]string{}}

	start := func(opts writebehind.Options[string, string]) (*writebehind.Queue[string, string], error) {
		j, err := writebehind.NewJournal(ctx, writebehind.JournalOptions[string, string]{Client: client, Consumer: "pod-0"})
		if err != nil {
			return nil, err
		}
		opts.Store, opts.Journal = db, j
		return writebehind.New(opts)
	}

	fmt.Fprintln(w, "\nWith a Journal, each write is appended to a Redis stream before Write returns.")
	db.down.Store(true)
	first, err := start(writebehind.Options[string, string]{
		Delay: -1, Retries: 1000, Backoff: writebehind.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
	})
	if err != nil {
		return err
	}
	for _, order := range []string{"order:1", "order:2", "order:3"} {
		if err := first.Write(ctx, order, "paid"); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "  the database is down; three orders are accepted and retried")
	deadline, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err = first.Close(deadline)
	var unwritten *writebehind.UnwrittenError[string, string]
	if !errors.As(err, &unwritten) {
		return fmt.Errorf("want an UnwrittenError, got %v", err)
	}
	pending, err := client.XPending(ctx, "girder:writebehind", "girder").Result()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  the process stops: Close reports %d writes not applied; %d stay pending in the stream\n",
		len(unwritten.Writes), pending.Count)

	db.down.Store(false)
	second, err := start(writebehind.Options[string, string]{})
	if err != nil {
		return err
	}
	if err := second.Close(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "  restarted as the same consumer, it takes them back: the database holds %v\n", db)
	fmt.Fprintln(w, "  (another instance would claim them with XAUTOCLAIM once they were idle for ClaimIdle)")
	return nil
}
