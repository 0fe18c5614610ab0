package rediscache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// heldBroadcast delivers the other instances' invalidations only once release is closed, so that
// a test can land a back-fill between a write and its invalidation.
type heldBroadcast struct {
	cache.Broadcaster[string]
	release chan struct{}
}

func (h *heldBroadcast) Listen(ctx context.Context, drop func([]string), dropAll func()) error {
	return h.Broadcaster.Listen(ctx, func(keys []string) {
		select {
		case <-h.release:
		case <-ctx.Done():
		}
		drop(keys)
	}, dropAll)
}

// gatedLoader reads the store of record, then waits for its gate before it returns what it read:
// a slow load whose row is old by the time it back-fills.
type gatedLoader struct {
	d    *db
	on   atomic.Bool
	read chan struct{}
	gate chan struct{}
}

func (g *gatedLoader) Load(ctx context.Context, key string) (int, error) {
	v, err := g.d.Load(ctx, key)
	if g.on.Load() {
		g.read <- struct{}{}
		<-g.gate
	}
	return v, err
}

// TestBackfillNeverOverwritesANewerWrite is symptom 3 of issue 18 on real Redis: instance B misses
// and loads the old row; instance A writes the new value; B's back-fill reaches Redis after A's
// write and before A's invalidation reaches B. Once quiet, Redis and both memory levels must hold
// the new value (or nothing), never the old one. Guarantee C2, for Get and for GetMany.
func TestBackfillNeverOverwritesANewerWrite(t *testing.T) {
	testenv.Require(t)
	node := testenv.StartRedis(t)
	client := node.Client(t)
	ctx := context.Background()

	reads := map[string]func(c *cache.Cache[string, int], key string){
		"Get":     func(c *cache.Cache[string, int], key string) { _, _ = c.Get(ctx, key) },
		"GetMany": func(c *cache.Cache[string, int], key string) { _, _ = c.GetMany(ctx, []string{key}) },
	}
	for _, via := range []string{"Get", "GetMany"} {
		for _, invalidate := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/InvalidateOnWrite=%v", via, invalidate), func(t *testing.T) {
				require.NoError(t, client.FlushDB(ctx).Err())
				const trials = 20
				rows := map[string]int{}
				for i := range trials {
					rows[fmt.Sprint("k", i)] = 1
				}
				d := newDB(rows)
				gl := &gatedLoader{d: d, read: make(chan struct{}), gate: make(chan struct{})}
				gl.on.Store(true)
				mk := func(loader cache.Loader[string, int], held *heldBroadcast) (*cache.Cache[string, int], *cache.Memory[string, int]) {
					b, err := NewBroadcast(BroadcastOptions[string]{Client: node.Client(t), Channel: "invalidate:users"})
					require.NoError(t, err)
					var bc cache.Broadcaster[string] = b
					if held != nil {
						held.Broadcaster = b
						bc = held
					}
					l1 := newTestMemory(t)
					c, err := cache.New(cache.Options[string, int]{
						Levels:            []cache.Level[string, int]{{Store: l1, TTL: time.Hour}, {Store: newTestRedis(t, client), TTL: time.Hour}},
						Loader:            loader,
						Writer:            d,
						Broadcast:         bc,
						InvalidateOnWrite: invalidate,
					})
					require.NoError(t, err)
					t.Cleanup(func() { c.Close() })
					require.NoError(t, c.Subscribed(ctx))
					return c, l1
				}
				a, l1a := mk(d, nil)
				held := &heldBroadcast{release: make(chan struct{})}
				b, l1b := mk(gl, held)

				var wg sync.WaitGroup
				for i := range trials {
					key := fmt.Sprint("k", i)
					wg.Add(1)
					go func() {
						defer wg.Done()
						reads[via](b, key) // loads 1, then waits at the gate
					}()
					<-gl.read
					require.NoError(t, a.Set(ctx, key, 2))
					gl.gate <- struct{}{} // B back-fills the row it read before A's write
				}
				wg.Wait()
				gl.on.Store(false)
				close(held.release) // now A's invalidations reach B
				require.Eventually(t, func() bool { return b.Stats().Invalidations >= trials }, 10*time.Second, time.Millisecond)

				for i := range trials {
					key := fmt.Sprint("k", i)
					raw, err := client.Get(ctx, "test:"+key).Result()
					if err != redis.Nil {
						require.NoError(t, err)
						assert.Equal(t, "2", raw, "Redis holds an older value than the write of %s", key)
					}
					for name, l1 := range map[string]*cache.Memory[string, int]{"A": l1a, "B": l1b} {
						if v, ok, _ := l1.Get(ctx, key); ok {
							assert.Equal(t, 2, v, "%s's memory holds an older value of %s", name, key)
						}
					}
					for name, c := range map[string]*cache.Cache[string, int]{"A": a, "B": b} {
						v, err := c.Get(ctx, key)
						require.NoError(t, err)
						assert.Equal(t, 2, v, "%s reads an older value of %s", name, key)
					}
				}
			})
		}
	}
}
