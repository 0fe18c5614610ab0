package rediscache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// faultClient is a client of node that reconnects after a restart and honours ctx deadlines.
func faultClient(t *testing.T, node *testenv.Redis) *redis.Client {
	opts := node.Options()
	opts.ContextTimeoutEnabled = true
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	opts.MaxRetries = 1
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestGetAndSetReturnDuringAnOutage: with Redis paused (nothing answers, connections stay open), a
// Get and a Set whose ctx has no deadline return within the Redis level's Timeout per call, and
// with a ctx deadline by it. Guarantee C5.
func TestGetAndSetReturnDuringAnOutage(t *testing.T) {
	testenv.Require(t)
	node := testenv.StartRedis(t)
	client := faultClient(t, node)
	const timeout = 200 * time.Millisecond
	d := newDB(map[string]int{"a": 1, "b": 2})
	l2, err := New(Options[string, int]{Client: client, Prefix: "test:", Timeout: timeout})
	require.NoError(t, err)
	c, err := cache.New(cache.Options[string, int]{
		Levels: []cache.Level[string, int]{{Store: newTestMemory(t), TTL: time.Minute}, {Store: l2, TTL: time.Minute}},
		Loader: d, Writer: d,
	})
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()

	node.Pause(t)
	defer node.Unpause(t)
	// A Get is a GET (bounded by the client's ReadTimeout) and a lease (by Timeout); a Set is one SET.
	tests := []struct {
		name  string
		ctx   func() (context.Context, context.CancelFunc)
		bound time.Duration
	}{
		{"no deadline", func() (context.Context, context.CancelFunc) { return ctx, func() {} }, 2*timeout + time.Second},
		{"ctx deadline", func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 50*time.Millisecond) }, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			_, _ = c.Get(cctx, "a")
			assert.Less(t, time.Since(start), tt.bound, "Get")
			start = time.Now()
			assert.Error(t, c.Set(cctx, "b", 3), "Set reports the level it could not write")
			assert.Less(t, time.Since(start), tt.bound, "Set")
		})
	}
}

// faultOp is one operation of the history.
type faultOp struct {
	key        int
	inst       int // the instance that served or wrote it
	write      bool
	version    int // written, or read
	mem        int // for a read: the version the instance's Memory level held right after, or 0
	start, end time.Time
	err        error
}

// TestCacheFaultSchedule runs three instances sharing real Redis, with concurrent readers and
// writers, while faults strike at random moments: Redis stopped and started, paused, keys deleted,
// FLUSHALL, the pub/sub connections killed. It checks the history: no read that starts more than
// the window after a write returned serves an older version (C1, C3), and once quiet every level
// agrees with the store of record (C6). GIRDER_SEED replays a schedule; GIRDER_SOAK=10m runs a
// long one.
func TestCacheFaultSchedule(t *testing.T) {
	testenv.Require(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GIRDER_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with GIRDER_SEED=%d", seed)
		}
	})
	run := 12 * time.Second
	if s := os.Getenv("GIRDER_SOAK"); s != "" {
		var err error
		run, err = time.ParseDuration(s)
		require.NoError(t, err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var rngMu sync.Mutex
	intn := func(n int) int { rngMu.Lock(); defer rngMu.Unlock(); return rng.IntN(n) }

	const (
		keys      = 8
		instances = 3
		health    = 250 * time.Millisecond
		l1TTL     = time.Second
		l2TTL     = 2 * time.Second
		timeout   = 300 * time.Millisecond
		// window is C1's bound, 2 × HealthInterval. A write that failed bounds nothing until the
		// TTLs: a load in flight (each of its Redis calls bounded by the Timeout), then L2, then L1.
		window     = 2 * health
		failWindow = 4*timeout + l2TTL + l1TTL + window
	)
	node := testenv.StartRedis(t)
	admin := faultClient(t, node)
	ctx := context.Background()

	var storeMu sync.Mutex
	store := map[string]int{}
	keyName := func(k int) string { return fmt.Sprint("k", k) }
	for k := range keys {
		store[keyName(k)] = 1
	}
	loader := cache.LoaderFunc[string, int](func(ctx context.Context, key string) (int, error) {
		storeMu.Lock()
		defer storeMu.Unlock()
		return store[key], nil
	})
	writer := cache.WriterFuncs[string, int]{
		WriteFunc: func(ctx context.Context, key string, v int) error {
			storeMu.Lock()
			defer storeMu.Unlock()
			store[key] = v
			return nil
		},
	}

	caches := make([]*cache.Cache[string, int], instances)
	l1s := make([]*cache.Memory[string, int], instances)
	type listenerEvent struct {
		at   time.Time
		inst int
		err  error
	}
	var lostMu sync.Mutex
	var lost []listenerEvent // the listeners' losses, for the report of a stale read
	for i := range instances {
		client := faultClient(t, node)
		l2, err := New(Options[string, int]{Client: client, Prefix: "f:", Timeout: timeout})
		require.NoError(t, err)
		b, err := NewBroadcast(BroadcastOptions[string]{Client: client, Channel: "f:inv", HealthInterval: health, Timeout: timeout})
		require.NoError(t, err)
		l1s[i] = newTestMemory(t)
		caches[i], err = cache.New(cache.Options[string, int]{
			Levels:            []cache.Level[string, int]{{Store: l1s[i], TTL: l1TTL}, {Store: l2, TTL: l2TTL}},
			Loader:            loader,
			Writer:            writer,
			Broadcast:         b,
			InvalidateOnWrite: i%2 == 1,
			Hooks: cache.Hooks[string]{OnError: func(_ context.Context, info cache.ErrorInfo[string]) {
				if errors.Is(info.Err, cache.ErrBroadcastLost) {
					lostMu.Lock()
					lost = append(lost, listenerEvent{time.Now(), i, info.Err})
					lostMu.Unlock()
				}
			}},
		})
		require.NoError(t, err)
		t.Cleanup(func() { caches[i].Close() })
		require.NoError(t, caches[i].Subscribed(ctx))
	}

	var histMu sync.Mutex
	var history []faultOp
	record := func(op faultOp) { histMu.Lock(); history = append(history, op); histMu.Unlock() }
	// Writes of one key are serialised, as a row lock in the store of record would do, so the
	// versions of a key are written in order.
	var keyMu [keys]sync.Mutex
	next := [keys]int{}
	for k := range keys {
		next[k] = 1
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					f()
				}
			}
		}()
	}
	// The window is kept by timers (the listener's ping and its deadline), which fire late when
	// the machine is overloaded. late samples how late a 10 ms sleep wakes, so that the check
	// can extend the window by what the machine did to timers around each read (see lateIn).
	type lateness struct {
		at   time.Time
		late time.Duration
	}
	var late []lateness
	worker(func() {
		t0 := time.Now()
		time.Sleep(10 * time.Millisecond)
		now := time.Now()
		late = append(late, lateness{at: now, late: now.Sub(t0) - 10*time.Millisecond})
	})
	for range 2 {
		worker(func() {
			k, inst := intn(keys), intn(instances)
			c := caches[inst]
			keyMu[k].Lock()
			next[k]++
			v := next[k]
			start := time.Now()
			err := c.Set(ctx, keyName(k), v)
			record(faultOp{key: k, inst: inst, write: true, version: v, start: start, end: time.Now(), err: err})
			keyMu[k].Unlock()
			time.Sleep(time.Duration(intn(20)) * time.Millisecond)
		})
	}
	for range 3 {
		worker(func() {
			k, inst := intn(keys), intn(instances)
			start := time.Now()
			v, err := caches[inst].Get(ctx, keyName(k))
			end := time.Now()
			mv, _, _ := l1s[inst].Get(ctx, keyName(k))
			record(faultOp{key: k, inst: inst, version: v, mem: mv, start: start, end: end, err: err})
			time.Sleep(time.Duration(intn(3)) * time.Millisecond)
		})
	}
	worker(func() { // GetMany of two keys: each is a read of its own in the history
		k1, k2, inst := intn(keys), intn(keys), intn(instances)
		start := time.Now()
		m, err := caches[inst].GetMany(ctx, []string{keyName(k1), keyName(k2)})
		end := time.Now()
		for _, k := range []int{k1, k2} {
			v, ok := m[keyName(k)]
			op := faultOp{key: k, inst: inst, version: v, start: start, end: end}
			if !ok {
				op.err = cmp.Or(err, cache.ErrNotFound)
			}
			record(op)
		}
		time.Sleep(time.Duration(intn(3)) * time.Millisecond)
	})

	faults := map[string]int{}
	type faultAt struct {
		at   time.Time
		kind string
	}
	var faultLog []faultAt // when each fault began, for the report of a stale read
	deadline := time.Now().Add(run)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(300+intn(1200)) * time.Millisecond)
		f := intn(6)
		faultLog = append(faultLog, faultAt{time.Now(), [...]string{"stop/start", "pause", "delete keys", "flushall", "kill pubsub", "kill pubsub"}[f]})
		switch f {
		case 0:
			faults["stop/start"]++
			node.Stop(t)
			time.Sleep(time.Duration(intn(500)) * time.Millisecond)
			node.Start(t)
		case 1:
			faults["pause"]++
			node.Pause(t)
			time.Sleep(time.Duration(100+intn(600)) * time.Millisecond)
			node.Unpause(t)
		case 2:
			faults["delete keys"]++
			_ = admin.Del(ctx, "f:"+keyName(intn(keys)), "f:"+keyName(intn(keys))).Err()
		case 3:
			faults["flushall"]++
			_ = admin.FlushAll(ctx).Err()
		default:
			faults["kill pubsub"]++
			_ = admin.ClientKillByFilter(ctx, "TYPE", "pubsub").Err()
		}
	}
	close(stop)
	wg.Wait()

	// Quiet: every copy older than the store has expired or been dropped.
	time.Sleep(failWindow)
	for k := range keys {
		key := keyName(k)
		storeMu.Lock()
		want := store[key]
		storeMu.Unlock()
		for i, c := range caches {
			v, err := c.Get(ctx, key)
			require.NoError(t, err)
			assert.Equal(t, want, v, "instance %d reads %s", i, key)
			if v, ok, _ := l1s[i].Get(ctx, key); ok {
				assert.Equal(t, want, v, "instance %d's memory holds %s", i, key)
			}
		}
		if raw, err := admin.Get(ctx, "f:"+key).Result(); err == nil && raw[0] != 0 {
			assert.Equal(t, strconv.Itoa(want), raw, "Redis holds %s", key)
		}
	}

	// The history: a read that starts after window past a write's return (failWindow for a write
	// that returned an error) serves that version or a newer one.
	var reads, writes, failed, stale int
	var maxLate time.Duration
	for _, l := range late {
		maxLate = max(maxLate, l.late)
	}
	// lateIn is the most a timer woke late between from and to (late is in time order).
	lateIn := func(from, to time.Time) time.Duration {
		var m time.Duration
		i, _ := slices.BinarySearchFunc(late, from, func(l lateness, t time.Time) int { return l.at.Compare(t) })
		for ; i < len(late) && !late[i].at.After(to.Add(10*time.Millisecond)); i++ {
			m = max(m, late[i].late)
		}
		return m
	}
	byKey := make([][]faultOp, keys)
	for _, op := range history {
		byKey[op.key] = append(byKey[op.key], op)
	}
	for k, ops := range byKey {
		var ws []faultOp
		for _, op := range ops {
			if op.write {
				ws = append(ws, op)
				writes++
				if op.err != nil {
					failed++
				}
			}
		}
		slices.SortFunc(ws, func(a, b faultOp) int { return a.version - b.version })
		for _, op := range ops {
			if op.write || op.err != nil {
				continue
			}
			reads++
			// The writes newer than what the read served, up to the last that started before it
			// (writes of a key are serialised, so versions are in time order).
			newer, _ := slices.BinarySearchFunc(ws, op.version+1, func(w faultOp, v int) int { return w.version - v })
			for _, w := range ws[newer:] {
				if w.start.After(op.start) {
					break
				}
				bound := window
				if w.err != nil {
					bound = failWindow
				}
				if !op.start.After(w.end.Add(bound)) {
					continue
				}
				// Two timers stand between a lost subscription and its detection.
				if op.start.After(w.end.Add(bound + 2*lateIn(w.end, op.start))) {
					stale++
					if stale <= 10 {
						var served faultOp // the write of the version the read served
						if i, ok := slices.BinarySearchFunc(ws, op.version, func(w faultOp, v int) int { return w.version - v }); ok {
							served = ws[i]
						}
						var near []string
						for _, f := range faultLog {
							if f.at.After(served.start.Add(-time.Second)) && f.at.Before(op.start) {
								near = append(near, fmt.Sprintf("%s at %+v", f.kind, f.at.Sub(w.end)))
							}
						}
						for _, e := range lost {
							if e.at.After(served.start.Add(-time.Second)) && e.at.Before(op.start) {
								near = append(near, fmt.Sprintf("instance %d lost its listener at %+v (%v)", e.inst, e.at.Sub(w.end), e.err))
							}
						}
						t.Errorf("key %d: instance %d's read started %v after write %d (by instance %d) returned (err %v) served %d "+
							"(memory then held %d; written by instance %d, err %v, returned %v before write %d); events since, relative to write %d's return: %v",
							k, op.inst, op.start.Sub(w.end), w.version, w.inst, w.err, op.version, op.mem,
							served.inst, served.err, w.end.Sub(served.end), w.version, w.version, near)
					}
					break
				}
			}
		}
	}
	t.Logf("seed %d, %v: %d reads, %d writes (%d returned errors), faults %v, stale reads past the window: %d; timers woke up to %v late",
		seed, run, reads, writes, failed, faults, stale, maxLate)
	assert.Zero(t, stale, "stale reads past the window")
	assert.Positive(t, reads)
}
