package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/writebehind"
)

func init() { register(writebehindRows) }

// writebehindKeys is how many distinct keys the Set rows cycle through: enough that coalescing
// does not make the store's work vanish.
const writebehindKeys = 1 << 14

// writebehindDB is a store of record with a fixed latency per round trip, as a database across a
// network has; a batch costs one round trip.
type writebehindDB struct {
	latency time.Duration
	mu      sync.Mutex
	rows    map[string]int
}

func (db *writebehindDB) WriteBatch(_ context.Context, writes []cache.Write[string, int]) error {
	time.Sleep(db.latency)
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, w := range writes {
		if w.Delete {
			delete(db.rows, w.Key)
		} else {
			db.rows[w.Key] = w.Value
		}
	}
	return nil
}

func (db *writebehindDB) Write(ctx context.Context, k string, v int) error {
	return db.WriteBatch(ctx, []cache.Write[string, int]{{Key: k, Value: v}})
}

func (db *writebehindDB) Delete(ctx context.Context, k string) error {
	return db.WriteBatch(ctx, []cache.Write[string, int]{{Key: k, Delete: true}})
}

func writebehindKeyNames() []string {
	keys := make([]string, writebehindKeys)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	return keys
}

func writebehindMust[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// writebehindSet measures Cache.Set over a memory level and a store of record with 1 ms latency,
// write-behind (the Writer is a WriteBehind) or write-through (the Writer is the store itself).
// Write-behind's figure is its sustained rate: the queue is bounded, so Set waits when the
// flushers fall behind.
func writebehindSet(behind bool) func(*testing.B) {
	return func(b *testing.B) {
		ctx := context.Background()
		db := &writebehindDB{latency: time.Millisecond, rows: map[string]int{}}
		var writer cache.Writer[string, int] = db
		var wb *writebehind.Queue[string, int]
		if behind {
			wb = writebehindMust(writebehind.New(writebehind.Options[string, int]{Store: db, Delay: 10 * time.Millisecond}))
			writer = wb
		}
		mem := writebehindMust(cache.NewMemory(cache.MemoryOptions[string, int]{MaxSize: 2 * writebehindKeys}))
		defer mem.Close()
		c := writebehindMust(cache.New(cache.Options[string, int]{
			Levels: []cache.Level[string, int]{{Store: mem}},
			Writer: writer,
		}))
		defer c.Close()
		keys := writebehindKeyNames()
		i := 0
		for b.Loop() {
			if err := c.Set(ctx, keys[i%writebehindKeys], i); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.StopTimer()
		if wb != nil {
			if err := wb.Close(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

var writebehindStream atomic.Int64

// writebehindWrite measures WriteBehind.Write from one goroutine or many, with the Redis Streams
// journal (one MULTI/EXEC per group of concurrent writes) or without it. The store is fast here:
// the figure is the cost of queueing, and of making the write durable.
func writebehindWrite(env *Env, journal bool, parallel bool) func(*testing.B) {
	return func(b *testing.B) {
		ctx := context.Background()
		opts := writebehind.Options[string, int]{
			Store: &writebehindDB{rows: map[string]int{}}, Delay: 10 * time.Millisecond, QueueSize: 2 * writebehindKeys,
		}
		if journal {
			client := redis.NewClient(&redis.Options{Addr: env.RedisAddr, PoolSize: 16})
			defer client.Close()
			stream := fmt.Sprintf("girder:bench:writebehind:%d", writebehindStream.Add(1))
			defer client.Del(ctx, stream)
			opts.Journal = writebehindMust(writebehind.NewJournal(ctx, writebehind.JournalOptions[string, int]{Client: client, Stream: stream}))
		}
		wb := writebehindMust(writebehind.New(opts))
		defer wb.Close(ctx)
		keys := writebehindKeyNames()
		if !parallel {
			i := 0
			for b.Loop() {
				if err := wb.Write(ctx, keys[i%writebehindKeys], i); err != nil {
					b.Fatal(err)
				}
				i++
			}
			return
		}
		var next atomic.Int64
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(next.Add(1))
				if err := wb.Write(ctx, keys[i%writebehindKeys], i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
}

func writebehindRows(env *Env) []Row {
	return []Row{
		{
			Package: "writebehind", Op: "Cache.Set, store 1 ms away: write-behind",
			Girder: writebehindSet(true),
			Peer:   "girder write-through", PeerFn: writebehindSet(false),
		},
		{Package: "writebehind", Op: "Write, no journal", Girder: writebehindWrite(env, false, false)},
		{Package: "writebehind", Op: "Write, Redis journal, 1 goroutine", Girder: writebehindWrite(env, true, false)},
		{Package: "writebehind", Op: "Write, Redis journal, 8×GOMAXPROCS goroutines", Girder: writebehindWrite(env, true, true)},
	}
}
