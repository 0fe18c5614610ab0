package redislimit

import (
	"context"
	"github.com/girder-go/girder/ratelimit"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newHybrid(t *testing.T, r *Limiter, o HybridOptions) *Hybrid {
	t.Helper()
	o.Redis = r
	h, err := NewHybrid(o)
	require.NoError(t, err)
	return h
}

func TestHybridLeasesInBatches(t *testing.T) {
	_, c := newMini(t)
	var cmds atomic.Int64
	c.AddHook(countHook{&cmds})
	r, err := New(Options{Client: c, Limit: ratelimit.PerHour(1000)})
	require.NoError(t, err)
	h := newHybrid(t, r, HybridOptions{LeaseSize: 10, LeaseTTL: time.Hour})
	assert.Equal(t, 10, h.LeaseSize())
	_, err = h.Allow(t.Context(), "warm") // loads the script
	require.NoError(t, err)
	cmds.Store(0)
	for i := range 100 {
		res, err := h.Allow(t.Context(), "k")
		require.NoError(t, err)
		require.True(t, res.Allowed)
		// Redis had 1000-10·(i/10+1) after the last lease; the lease holds 9-i%10 more.
		assert.Equal(t, 1000-10*(i/10+1)+9-i%10, res.Remaining, "decision %d", i)
	}
	assert.Equal(t, int64(10), cmds.Load(), "one round trip per lease of 10")
}

func TestHybridRemembersDenials(t *testing.T) {
	_, c := newMini(t)
	var cmds atomic.Int64
	c.AddHook(countHook{&cmds})
	r, err := New(Options{Client: c, Limit: ratelimit.PerHour(3)})
	require.NoError(t, err)
	h := newHybrid(t, r, HybridOptions{LeaseSize: 3, LeaseTTL: time.Hour})
	for range 3 {
		res, err := h.Allow(t.Context(), "k")
		require.NoError(t, err)
		require.True(t, res.Allowed)
	}
	before := cmds.Load()
	for range 50 {
		res, err := h.Allow(t.Context(), "k")
		require.NoError(t, err)
		require.False(t, res.Allowed)
		assert.InDelta(t, float64(20*time.Minute), float64(res.RetryAfter), float64(time.Second))
	}
	assert.Equal(t, before+1, cmds.Load(), "one denial from Limiter, the rest remembered")
}

func TestHybridLeaseTTL(t *testing.T) {
	_, c := newMini(t)
	var cmds atomic.Int64
	c.AddHook(countHook{&cmds})
	r, err := New(Options{Client: c, Limit: ratelimit.PerHour(100)})
	require.NoError(t, err)
	h := newHybrid(t, r, HybridOptions{LeaseSize: 10, LeaseTTL: time.Nanosecond})
	for range 5 {
		_, err := h.Allow(t.Context(), "k")
		require.NoError(t, err)
	}
	assert.GreaterOrEqual(t, cmds.Load(), int64(5), "lapsed leases are not spent")
	res, err := r.Decide(t.Context(), "k", 0)
	require.NoError(t, err)
	assert.Equal(t, 50, res.Remaining, "every decision leased a fresh batch of 10")
}

// TestHybridOverAdmissionBound shows the over-admission the bound allows, and that it holds.
func TestHybridOverAdmissionBound(t *testing.T) {
	m, c := newMini(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	limit := ratelimit.PerHour(100)
	r, err := New(Options{Client: c, Limit: limit})
	require.NoError(t, err)
	const procs, lease = 4, 10
	hs := make([]*Hybrid, procs)
	for i := range hs {
		hs[i] = newHybrid(t, r, HybridOptions{LeaseSize: lease, LeaseTTL: 2 * time.Hour})
		res, err := hs[i].Allow(t.Context(), "k") // leases 10, spends 1
		require.NoError(t, err)
		require.True(t, res.Allowed)
	}
	// An hour later Redis's bucket is full again, while each process still holds 9 tokens.
	advance(m, time.Hour, &now)
	admitted := 0
	for {
		res, err := r.Allow(t.Context(), "k") // the rest of the world, straight to Redis
		require.NoError(t, err)
		if !res.Allowed {
			break
		}
		admitted++
	}
	for _, h := range hs {
		for {
			res, err := h.Allow(t.Context(), "k")
			require.NoError(t, err)
			if !res.Allowed {
				break
			}
			admitted++
		}
	}
	// In this one instant a pure limiter admits the burst; the hybrid adds the leased tokens.
	assert.Equal(t, 100+procs*(lease-1), admitted)
	assert.LessOrEqual(t, admitted, limit.Burst+procs*lease)
}

func TestHybridConcurrentBound(t *testing.T) {
	m, c := newMini(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// 10⁶/s so that a remembered denial (retry after 1 µs of local time) has lapsed by the next
	// phase, while Redis's clock moves only when the test moves it.
	limit := ratelimit.Limit{Rate: 1e6, Burst: 100}
	r, err := New(Options{Client: c, Limit: limit})
	require.NoError(t, err)
	const procs, lease = 4, 8
	deciders := make([]ratelimit.Decider, procs)
	for i := range deciders {
		deciders[i] = newHybrid(t, r, HybridOptions{LeaseSize: lease, LeaseTTL: time.Hour})
	}
	var admitted atomic.Int64
	var elapsed time.Duration
	for phase := range 4 {
		admitted.Add(admitConcurrently(t, deciders, "shared", 60))
		bound := float64(limit.Burst) + limit.Rate*elapsed.Seconds() + procs*lease
		require.LessOrEqual(t, float64(admitted.Load()), bound, "phase %d", phase)
		advance(m, 20*time.Microsecond, &now) // 20 more tokens
		elapsed += 20 * time.Microsecond
	}
	assert.Greater(t, admitted.Load(), int64(limit.Burst), "refills were used")
}

func TestHybridFailurePolicy(t *testing.T) {
	m, c := newMini(t)
	r, err := New(Options{Client: c, Limit: ratelimit.PerHour(100), Failure: FailClosed, NoBackoff: true})
	require.NoError(t, err)
	h := newHybrid(t, r, HybridOptions{LeaseSize: 5, LeaseTTL: time.Hour})
	res, err := h.Allow(t.Context(), "k")
	require.NoError(t, err)
	require.True(t, res.Allowed)
	m.Close()
	for range 4 {
		res, err = h.Allow(t.Context(), "k")
		require.NoError(t, err)
		assert.True(t, res.Allowed, "the lease is still good without Redis")
		assert.False(t, res.Fallback)
	}
	res, err = h.Allow(t.Context(), "k")
	require.NoError(t, err)
	assert.False(t, res.Allowed)
	assert.True(t, res.Fallback)
	require.NoError(t, m.Restart())
	res, err = h.Allow(t.Context(), "k")
	require.NoError(t, err)
	assert.True(t, res.Allowed)
	assert.False(t, res.Fallback)
}

func TestHybridMaxKeys(t *testing.T) {
	_, c := newMini(t)
	r, err := New(Options{Client: c, Limit: ratelimit.PerHour(100)})
	require.NoError(t, err)
	h := newHybrid(t, r, HybridOptions{LeaseSize: 5, MaxKeys: 10})
	for i := range 50 {
		_, err := h.Allow(t.Context(), strconv.Itoa(i))
		require.NoError(t, err)
		require.LessOrEqual(t, h.Len(), 10)
	}
}

func TestHybridValidate(t *testing.T) {
	_, c := newMini(t)
	r, err := New(Options{Client: c, Limit: ratelimit.PerHour(100)})
	require.NoError(t, err)
	_, err = NewHybrid(HybridOptions{})
	assert.ErrorContains(t, err, "Redis is nil")
	_, err = NewHybrid(HybridOptions{Redis: r, LeaseSize: 101, LeaseTTL: -1, MaxKeys: -1})
	for _, want := range []string{"exceeds the burst", "LeaseTTL", "MaxKeys"} {
		assert.ErrorContains(t, err, want)
	}
	h, err := NewHybrid(HybridOptions{Redis: r})
	require.NoError(t, err)
	assert.Equal(t, 10, h.LeaseSize(), "a tenth of the burst by default")
	_, err = h.Decide(t.Context(), "", 1)
	assert.ErrorIs(t, err, ratelimit.ErrEmptyKey)
	var nilH *Hybrid
	_, err = nilH.Allow(t.Context(), "k")
	assert.ErrorIs(t, err, ratelimit.ErrInvalidLimit)
	assert.Zero(t, nilH.Len())
}

func TestHybridLocalAllocs(t *testing.T) {
	_, c := newMini(t)
	r, err := New(Options{Client: c, Limit: ratelimit.Limit{Rate: 1e6, Burst: 1 << 30}})
	require.NoError(t, err)
	h := newHybrid(t, r, HybridOptions{LeaseSize: 1 << 29, LeaseTTL: time.Hour})
	_, err = h.Allow(t.Context(), "k")
	require.NoError(t, err)
	assert.Zero(t, testing.AllocsPerRun(1000, func() { _, _ = h.Allow(t.Context(), "k") }))
}

func BenchmarkHybridAllowLocal(b *testing.B) {
	m, err := miniredis.Run()
	require.NoError(b, err)
	defer m.Close()
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer c.Close()
	r, _ := New(Options{Client: c, Limit: ratelimit.Limit{Rate: 1e6, Burst: 1 << 30}})
	h, _ := NewHybrid(HybridOptions{Redis: r, LeaseSize: 1 << 20, LeaseTTL: time.Hour})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = h.Allow(ctx, "k")
	}
}
