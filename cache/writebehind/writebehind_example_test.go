package writebehind_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/writebehind"
	"github.com/redis/go-redis/v9"
)

// exampleDB is a store of record that counts its round trips.
type exampleDB struct {
	mu    sync.Mutex
	rows  map[string]string
	calls int
}

func (db *exampleDB) WriteBatch(_ context.Context, writes []cache.Write[string, string]) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.calls++
	for _, w := range writes {
		if w.Delete {
			delete(db.rows, w.Key)
		} else {
			db.rows[w.Key] = w.Value
		}
	}
	return nil
}

func (db *exampleDB) Write(ctx context.Context, k, v string) error {
	return db.WriteBatch(ctx, []cache.Write[string, string]{{Key: k, Value: v}})
}

func (db *exampleDB) Delete(ctx context.Context, k string) error {
	return db.WriteBatch(ctx, []cache.Write[string, string]{{Key: k, Delete: true}})
}

func (db *exampleDB) String() string {
	db.mu.Lock()
	defer db.mu.Unlock()
	var out []string
	for _, k := range slices.Sorted(maps.Keys(db.rows)) {
		out = append(out, k+"="+db.rows[k])
	}
	return fmt.Sprintf("%v after %d round trips", out, db.calls)
}

// A Cache whose Writer is a Queue is a write-behind cache: Set updates the cache at once and
// the database later, with the writes of a key coalesced and batched.
func Example() {
	ctx := context.Background()
	db := &exampleDB{rows: map[string]string{}}
	wb, err := writebehind.New(writebehind.Options[string, string]{
		Store: db,
		Delay: time.Minute, // the longest a write waits to be coalesced and batched
	})
	if err != nil {
		panic(err)
	}
	mem, err := cache.NewMemory(cache.MemoryOptions[string, string]{})
	if err != nil {
		panic(err)
	}
	defer mem.Close()
	users, err := cache.New(cache.Options[string, string]{
		Levels: []cache.Level[string, string]{{Store: mem}},
		Writer: wb,
	})
	if err != nil {
		panic(err)
	}
	defer users.Close()

	for _, name := range []string{"ada", "ada lovelace", "Ada Lovelace"} {
		users.Set(ctx, "user:1", name)
	}
	users.Set(ctx, "user:2", "alan")
	users.Delete(ctx, "user:2")
	v, _ := users.Get(ctx, "user:1")
	fmt.Println("cache:", v)
	fmt.Println("db before the delay:", db)

	if err := wb.Close(ctx); err != nil { // drains the queue
		panic(err)
	}
	fmt.Println("db after Close:", db)
	// Output:
	// cache: Ada Lovelace
	// db before the delay: [] after 0 round trips
	// db after Close: [user:1=Ada Lovelace] after 1 round trips
}

// With a Journal, a write is in Redis before Write returns, and stays there until the store has
// it: if this process crashes, another instance applies it.
func ExampleNewJournal() {
	ctx := context.Background()
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		panic(err)
	}
	defer m.Close()
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()

	journal, err := writebehind.NewJournal(ctx, writebehind.JournalOptions[string, string]{Client: client, Consumer: "pod-0"})
	if err != nil {
		panic(err)
	}
	db := &exampleDB{rows: map[string]string{}}
	wb, err := writebehind.New(writebehind.Options[string, string]{Store: db, Journal: journal})
	if err != nil {
		panic(err)
	}
	wb.Write(ctx, "order:7", "paid")
	pending, _ := client.XPending(ctx, "girder:writebehind", "girder").Result()
	fmt.Println("pending in the journal:", pending.Count)

	wb.Close(ctx)
	pending, _ = client.XPending(ctx, "girder:writebehind", "girder").Result()
	fmt.Println("pending after Close:", pending.Count)
	fmt.Println(db)
	// Output:
	// pending in the journal: 1
	// pending after Close: 0
	// [order:7=paid] after 1 round trips
}
