package cache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/rediscache"
	"github.com/redis/go-redis/v9"
)

type User struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// users stands for a table of the database.
var users = map[int]User{1: {1, "Ada"}, 2: {2, "Grace"}}

func loadUser(_ context.Context, id int) (User, error) {
	u, ok := users[id]
	if !ok {
		return User{}, fmt.Errorf("user %d: %w", id, cache.ErrNotFound)
	}
	return u, nil
}

// A Cache with memory in the process, Redis shared by every instance, and the database behind.
func Example() {
	ctx := context.Background()
	mr, _ := miniredis.Run() // a real Redis in production
	defer mr.Close()
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()

	l1, _ := cache.NewMemory(cache.MemoryOptions[int, User]{MaxSize: 10_000})
	defer l1.Close()
	l2, _ := rediscache.New(rediscache.Options[int, User]{Client: client, Prefix: "user:"})
	users, _ := cache.New(cache.Options[int, User]{
		Levels: []cache.Level[int, User]{
			{Name: "memory", Store: l1, TTL: time.Minute, Jitter: 0.1},
			{Name: "redis", Store: l2, TTL: time.Hour, Jitter: 0.1},
		},
		Loader:      cache.LoaderFunc[int, User](loadUser),
		NegativeTTL: time.Minute,
	})
	defer users.Close()

	u, _ := users.Get(ctx, 1) // database, then stored in Redis and memory
	fmt.Println(u.Name)
	raw, _ := mr.Get("user:1")
	fmt.Println(raw)
	_, err := users.Get(ctx, 3)
	fmt.Println(errors.Is(err, cache.ErrNotFound))
	// Output:
	// Ada
	// {"id":1,"name":"Ada"}
	// true
}

// Write-through: the database first, then every level.
func ExampleCache_Set() {
	ctx := context.Background()
	db := map[string]string{}
	mem, _ := cache.NewMemory(cache.MemoryOptions[string, string]{})
	defer mem.Close()
	c, _ := cache.New(cache.Options[string, string]{
		Levels: []cache.Level[string, string]{{Store: mem}},
		Writer: cache.WriterFuncs[string, string]{
			WriteFunc: func(_ context.Context, k, v string) error {
				if v == "" {
					return errors.New("empty value refused")
				}
				db[k] = v
				return nil
			},
			DeleteFunc: func(_ context.Context, k string) error { delete(db, k); return nil },
		},
	})
	defer c.Close()

	fmt.Println(c.Set(ctx, "greeting", "hello"), db["greeting"])
	v, _ := c.Get(ctx, "greeting")
	fmt.Println(v)
	fmt.Println(c.Set(ctx, "greeting", ""))
	v, _ = c.Get(ctx, "greeting")
	fmt.Println(v) // the failed write left the cache untouched
	// Output:
	// <nil> hello
	// hello
	// cache: write greeting: empty value refused
	// hello
}

// GetMany reads many keys with one batch read per level and one batch load.
func ExampleCache_GetMany() {
	ctx := context.Background()
	mem, _ := cache.NewMemory(cache.MemoryOptions[int, User]{})
	defer mem.Close()
	c, _ := cache.New(cache.Options[int, User]{
		Levels: []cache.Level[int, User]{{Store: mem}},
		BatchLoader: cache.BatchLoaderFunc[int, User](func(_ context.Context, ids []int) (map[int]User, error) {
			fmt.Println("one query for", len(ids), "ids")
			m := map[int]User{}
			for _, id := range ids {
				if u, ok := users[id]; ok {
					m[id] = u
				}
			}
			return m, nil
		}),
	})
	defer c.Close()
	got, _ := c.GetMany(ctx, []int{1, 2, 3})
	fmt.Println(len(got), got[2].Name)
	// Output:
	// one query for 3 ids
	// 2 Grace
}
