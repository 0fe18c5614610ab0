package rediscache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/cachetest"
	"github.com/girder-go/girder/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIntegrationCluster runs the Redis level and the broadcast on a real Redis Cluster (3
// masters, 1 replica each), started once for the subtests: the store contract, batches whose keys
// live on every master, leases and back-fills on every master, a tenant's keys spread over the
// masters unless a hash tag joins them, invalidations between two instances (each with its own
// cluster client) by plain and by sharded pub/sub, and a master's failover under all of it
// (CLUSTER FAILOVER; with GIRDER_SOAK also kills).
func TestIntegrationCluster(t *testing.T) {
	t.Parallel()
	rc := testenv.StartRedisCluster(t)
	ctx := context.Background()
	newClient := func(t *testing.T) *redis.ClusterClient { return rc.ClientTimeout(t, time.Second) }
	admin := newClient(t)
	flush := func(t *testing.T) {
		t.Helper()
		testenv.FlushMasters(t, admin)
	}
	// masterOf returns a plain client of the master that serves key's slot (no redirects).
	masterOf := func(t *testing.T, key string) *redis.Client {
		t.Helper()
		m, err := admin.MasterForKey(ctx, key)
		require.NoError(t, err)
		return m
	}

	t.Run("store contract", func(t *testing.T) {
		cachetest.StoreContract(t, func(t *testing.T) cache.Store[string, int] {
			flush(t)
			return newTestRedis(t, admin)
		})
	})

	t.Run("batches span the masters", func(t *testing.T) {
		flush(t)
		store := newTestRedis(t, newClient(t))
		var keys []string
		var entries []cache.Entry[string, int]
		for i := range 48 {
			k := fmt.Sprint("user-", i)
			keys = append(keys, k)
			entries = append(entries, cache.Entry[string, int]{Key: k, Value: i, TTL: time.Minute})
		}
		require.NoError(t, store.SetMany(ctx, entries))
		on := map[string]int{}
		for i, k := range keys {
			m := masterOf(t, "test:"+k)
			on[m.Options().Addr]++
			raw, err := m.Get(ctx, "test:"+k).Result()
			require.NoError(t, err, "%s is on the master that serves its slot", k)
			assert.Equal(t, strconv.Itoa(i), raw)
		}
		t.Logf("48 keys of one batch on the masters: %v", on)
		assert.Len(t, on, 3, "the batch spans every master")

		res, err := store.GetMany(ctx, keys)
		require.NoError(t, err)
		for i, r := range res {
			require.NoError(t, r.Err)
			assert.True(t, r.Hit, keys[i])
			assert.Equal(t, i, r.Value)
		}
		require.NoError(t, store.DeleteMany(ctx, keys[:24]))
		res, err = store.GetMany(ctx, keys)
		require.NoError(t, err)
		for i, r := range res {
			require.NoError(t, r.Err)
			assert.Equal(t, i >= 24, r.Hit, "%s after deleting the first half", keys[i])
		}

		// Through a Cache: one GetMany loads the misses as one batch and back-fills every master.
		rows := map[string]int{}
		var ckeys []string
		for i := range 30 {
			k := fmt.Sprint("c-", i)
			rows[k], ckeys = i, append(ckeys, k)
		}
		d := newDB(rows)
		c, err := cache.New(cache.Options[string, int]{
			Levels: []cache.Level[string, int]{{Store: newTestMemory(t), TTL: time.Minute}, {Store: store, TTL: time.Minute}},
			Loader: d, BatchLoader: d,
		})
		require.NoError(t, err)
		defer c.Close()
		got, err := c.GetMany(ctx, ckeys)
		require.NoError(t, err)
		assert.Equal(t, rows, got)
		assert.EqualValues(t, 1, d.loads.Load(), "one batch load")
		for k, v := range rows {
			raw, err := admin.Get(ctx, "test:"+k).Result()
			require.NoError(t, err, "%s back-filled", k)
			assert.Equal(t, strconv.Itoa(v), raw)
		}
	})

	t.Run("a tenant's keys spread unless a hash tag joins them", func(t *testing.T) {
		flush(t)
		client := newClient(t)
		spread, err := New(Options[string, int]{Client: client, Prefix: "users:tenant-a:"})
		require.NoError(t, err)
		joined, err := New(Options[string, int]{Client: client, Prefix: "users:{tenant-a}:"})
		require.NoError(t, err)
		spreadOn, joinedOn := map[string]int{}, map[string]int{}
		var keys []string
		var entries []cache.Entry[string, int]
		for i := range 30 {
			k := fmt.Sprint("user-", i)
			keys = append(keys, k)
			entries = append(entries, cache.Entry[string, int]{Key: k, Value: i})
			spreadOn[masterOf(t, spread.redisKey(k)).Options().Addr]++
			joinedOn[masterOf(t, joined.redisKey(k)).Options().Addr]++
		}
		for _, s := range []*Store[string, int]{spread, joined} {
			require.NoError(t, s.SetMany(ctx, entries))
			res, err := s.GetMany(ctx, keys)
			require.NoError(t, err)
			for i, r := range res {
				assert.True(t, r.Hit && r.Value == i, "%s%s", s.prefix, keys[i])
			}
		}
		t.Logf("30 keys of one tenant: %v without a hash tag, %v with one", spreadOn, joinedOn)
		assert.Len(t, spreadOn, 3, "keys land on every master")
		assert.Len(t, joinedOn, 1, "a hash tag puts them on one slot")
	})

	t.Run("leases and back-fills on every master", func(t *testing.T) {
		flush(t)
		store := newTestRedis(t, newClient(t))
		// One key per master: the scripts run on each (each master loads them on first use).
		byMaster := map[string]string{}
		for i := 0; len(byMaster) < 3; i++ {
			k := fmt.Sprint("lease-", i)
			if a := masterOf(t, "test:"+k).Options().Addr; byMaster[a] == "" {
				byMaster[a] = k
			}
		}
		for addr, k := range byMaster {
			token, _, hit, err := store.Lease(ctx, k)
			require.NoError(t, err, addr)
			require.False(t, hit)
			require.NotEmpty(t, token)
			joined, _, hit, err := store.Lease(ctx, k)
			require.NoError(t, err)
			assert.False(t, hit)
			assert.Equal(t, token, joined, "a second miss joins the lease")
			_, hit, err = store.Get(ctx, k)
			require.NoError(t, err)
			assert.False(t, hit, "a lease reads as a miss")
			ok, err := store.FillLeased(ctx, k, token, 7, false, time.Minute)
			require.NoError(t, err)
			assert.True(t, ok, "the holder's back-fill lands")
			v, hit, err := store.Get(ctx, k)
			require.NoError(t, err)
			assert.True(t, hit && v == 7, "%s on %s", k, addr)

			// A write ends the lease: the older back-fill does nothing.
			k2 := k + ":written"
			token, _, _, err = store.Lease(ctx, k2)
			require.NoError(t, err)
			require.NoError(t, store.Set(ctx, k2, 9, time.Minute))
			ok, err = store.FillLeased(ctx, k2, token, 1, false, time.Minute)
			require.NoError(t, err)
			assert.False(t, ok, "a back-fill after a write is refused")
			v, _, _ = store.Get(ctx, k2)
			assert.Equal(t, 9, v)

			// An absence fills too.
			k3 := k + ":absent"
			token, _, _, err = store.Lease(ctx, k3)
			require.NoError(t, err)
			ok, err = store.FillLeased(ctx, k3, token, 0, true, time.Minute)
			require.NoError(t, err)
			assert.True(t, ok)
			_, _, err = store.Get(ctx, k3)
			assert.ErrorIs(t, err, cache.ErrNotFound)
		}

		// Many leases at once, their keys on every master, in one pipeline; then again once the
		// masters have lost their scripts, as after a restart.
		checkLeaseMany(t, store, "many-", func() error { return admin.ScriptFlush(ctx).Err() })

		// Through a Cache, whose misses take the leases and back-fill.
		rows := map[string]int{}
		for _, k := range byMaster {
			rows["c:"+k] = len(k)
		}
		d := newDB(rows)
		c, err := cache.New(cache.Options[string, int]{
			Levels: []cache.Level[string, int]{{Store: newTestMemory(t), TTL: time.Minute}, {Store: store, TTL: time.Minute}},
			Loader: d,
		})
		require.NoError(t, err)
		defer c.Close()
		for k, want := range rows {
			v, err := c.Get(ctx, k)
			require.NoError(t, err)
			assert.Equal(t, want, v)
			raw, err := admin.Get(ctx, "test:"+k).Result()
			require.NoError(t, err)
			assert.Equal(t, strconv.Itoa(want), raw, "%s back-filled through its lease", k)
		}
	})

	for _, mode := range []PubSub{PubSubPlain, PubSubSharded} {
		t.Run("instances invalidate each other/"+mode.String(), func(t *testing.T) {
			flush(t)
			channel := "inv:users:" + mode.String()
			d := newDB(map[string]int{})
			l2 := newTestRedis(t, newClient(t))
			a, _ := clusterInstance(t, newClient(t), l2, d, channel, mode, nil)
			b, l1b := clusterInstance(t, newClient(t), l2, d, channel, mode, nil)
			if mode == PubSubSharded {
				// The listeners are on the master that serves the channel's slot, as sharded
				// subscribers.
				n, err := masterOf(t, channel).Do(ctx, "pubsub", "shardnumsub", channel).Slice()
				require.NoError(t, err)
				assert.Equal(t, []any{channel, int64(2)}, n)
			}
			const writes = 30
			windows := make([]time.Duration, 0, writes)
			for i := 1; i <= writes; i++ {
				k := fmt.Sprint("k-", i%10)
				require.NoError(t, d.Write(ctx, k, 0))
				_, err := b.Get(ctx, k) // b holds a copy in memory
				require.NoError(t, err)
				require.NoError(t, a.Set(ctx, k, i))
				written := time.Now()
				for {
					if _, ok, _ := l1b.Get(ctx, k); !ok {
						break
					}
					require.Less(t, time.Since(written), 5*time.Second, "b never dropped its copy")
				}
				windows = append(windows, time.Since(written))
				v, err := b.Get(ctx, k)
				require.NoError(t, err)
				require.Equal(t, i, v)
			}
			assert.EqualValues(t, writes, b.Stats().Invalidations, "every copy dropped by a message")
			slices.Sort(windows)
			t.Logf("%s pub/sub on the cluster: staleness window over %d writes: median %v, max %v",
				mode, writes, windows[writes/2], windows[writes-1])
		})
	}

	t.Run("failover", func(t *testing.T) {
		_, rng := testenv.Seed(t)
		soak := testenv.Soak(t, 0)
		deadline := time.Now().Add(soak)
		for round := 0; ; round++ {
			tag := fmt.Sprint("{fo-", rng.IntN(1_000_000), "}")
			failCache(t, rc, newClient, "CLUSTER FAILOVER", tag, func(t *testing.T, m *testenv.Redis) { rc.Failover(t, m) })
			if soak == 0 {
				break
			}
			tag = fmt.Sprint("{fo-", rng.IntN(1_000_000), "}")
			var killed *testenv.Redis
			failCache(t, rc, newClient, "master killed", tag, func(t *testing.T, m *testenv.Redis) { killed = m; rc.Kill(t, m) })
			if time.Now().After(deadline) {
				break
			}
			rc.Restart(t, killed)
		}
	})
}

// clusterInstance is instance with the broadcast's channel, commands and hooks chosen, once its
// listener is subscribed.
func clusterInstance(t *testing.T, client redis.UniversalClient, l2 cache.Store[string, int], d *db, channel string, mode PubSub,
	onErr func(context.Context, cache.ErrorInfo[string])) (*cache.Cache[string, int], *cache.Memory[string, int]) {
	t.Helper()
	c, l1 := instanceWith(t, BroadcastOptions[string]{Client: client, Channel: channel, PubSub: mode, HealthInterval: 250 * time.Millisecond},
		l2, d, cache.Hooks[string]{OnError: onErr})
	require.NoError(t, c.Subscribed(context.Background()))
	return c, l1
}

// failCache fails over the master that serves tag's slot while probes use the Redis level (a Set
// then a Get of a key on that master) and, for each kind of pub/sub, a pair of instances whose
// channel lives on that slot: instance A writes a key that B holds in memory, and B must drop its
// copy within a second. A failed write is a failed call; so is a copy B keeps after A's write
// returned nil, which the test also counts as a violation (C1) and requires none of. Once every
// part works again, it checks that an invalidation arrives by a message again.
func failCache(t *testing.T, rc *testenv.RedisCluster, newClient func(*testing.T) *redis.ClusterClient, name, tag string,
	fault func(*testing.T, *testenv.Redis)) {
	ctx := context.Background()
	store, err := New(Options[string, int]{Client: newClient(t), Prefix: "fo:", Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	storeKey := tag + ":level"
	var n atomic.Int64
	probes := []*testenv.Probe{testenv.StartProbe(name+", Redis level Set+Get", 5*time.Millisecond, func(ctx context.Context) error {
		i := int(n.Add(1))
		if err := store.Set(ctx, storeKey, i, time.Minute); err != nil {
			return err
		}
		v, hit, err := store.Get(ctx, storeKey)
		switch {
		case err != nil:
			return err
		case !hit || v != i:
			return errors.New("read another value than the one just written")
		}
		return nil
	})}

	type pair struct {
		mode    PubSub
		channel string
		a, b    *cache.Cache[string, int]
		l1b     *cache.Memory[string, int]
		lost    atomic.Int64 // ErrBroadcastLost seen by B's listener
		whyMu   sync.Mutex
		why     map[string]int // its messages
		stale   atomic.Int64   // B kept its copy a second after A's write returned nil
	}
	var pairs []*pair
	for _, mode := range []PubSub{PubSubPlain, PubSubSharded} {
		p := &pair{mode: mode, channel: "fo:" + tag + ":inv:" + mode.String(), why: map[string]int{}}
		key, checkKey := tag+":bc:"+mode.String(), tag+":check:"+mode.String()
		d := newDB(map[string]int{key: 0, checkKey: 0})
		l2, err := New(Options[string, int]{Client: newClient(t), Prefix: "fo:", Timeout: 300 * time.Millisecond})
		require.NoError(t, err)
		p.a, _ = clusterInstance(t, newClient(t), l2, d, p.channel, mode, nil)
		p.b, p.l1b = clusterInstance(t, newClient(t), l2, d, p.channel, mode, func(_ context.Context, info cache.ErrorInfo[string]) {
			if errors.Is(info.Err, cache.ErrBroadcastLost) {
				p.lost.Add(1)
				msg := info.Err.Error()
				if i := strings.Index(msg, "lost: "); i >= 0 {
					msg = msg[i+len("lost: "):]
				}
				p.whyMu.Lock()
				p.why[msg]++
				p.whyMu.Unlock()
			}
		})
		pairs = append(pairs, p)
		var i atomic.Int64
		probes = append(probes, testenv.StartProbe(name+", "+mode.String()+" broadcast", 5*time.Millisecond, func(ctx context.Context) error {
			if _, err := p.b.Get(ctx, key); err != nil {
				return fmt.Errorf("b: get: %w", err)
			}
			if err := p.a.Set(ctx, key, int(i.Add(1))); err != nil {
				return fmt.Errorf("a: set: %w", err)
			}
			written := time.Now()
			for time.Since(written) < time.Second {
				if _, ok, _ := p.l1b.Get(ctx, key); !ok {
					return nil
				}
				time.Sleep(time.Millisecond)
			}
			p.stale.Add(1)
			return errors.New("b kept its copy a second after a's write returned")
		}))
	}

	time.Sleep(300 * time.Millisecond)
	for _, p := range probes {
		p.Mark()
	}
	master := rc.MasterFor(t, "fo:"+tag)
	start := time.Now()
	fault(t, master)
	t.Logf("%s of %s: the cluster was healthy again after %v", name, master.Alias(), time.Since(start).Round(time.Millisecond))
	// Every part works again: the level reads and writes, and each instance B hears A's writes
	// by a message (not only by dropping everything when it subscribes again).
	var why atomic.Value
	ok := assert.Eventually(t, func() bool {
		if err := store.Set(ctx, storeKey+":check", 1, time.Minute); err != nil {
			why.Store("level: " + err.Error())
			return false
		}
		for _, p := range pairs {
			key := tag + ":check:" + p.mode.String()
			if _, err := p.b.Get(ctx, key); err != nil {
				why.Store(p.mode.String() + ": b: get: " + err.Error())
				return false
			}
			before := p.b.Stats().Invalidations
			if err := p.a.Set(ctx, key, 1); err != nil {
				why.Store(p.mode.String() + ": a: set: " + err.Error())
				return false
			}
			heard := false
			for range 200 {
				if p.b.Stats().Invalidations > before {
					heard = true
					break
				}
				time.Sleep(time.Millisecond)
			}
			if !heard {
				why.Store(p.mode.String() + ": b heard nothing")
				return false
			}
		}
		return true
	}, 60*time.Second, 10*time.Millisecond)
	if !ok {
		for _, p := range probes {
			t.Log(p.Stop())
		}
		t.Fatalf("%s: not every part works again: %v", name, why.Load())
	}
	t.Logf("%s: every part (level, both broadcasts heard by a message) worked again %v after the fault began",
		name, time.Since(start).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	for _, p := range probes {
		t.Log(p.Stop())
	}
	for _, p := range pairs {
		p.whyMu.Lock()
		t.Logf("%s, %s broadcast: B's listener lost its subscription %d times: %v", name, p.mode, p.lost.Load(), p.why)
		p.whyMu.Unlock()
		assert.Zero(t, p.stale.Load(), "%s broadcast: B served a copy older than a write that returned", p.mode)
	}
}
