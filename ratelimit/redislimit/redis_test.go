package redislimit

import (
	"context"
	"errors"
	"github.com/girder-go/girder/ratelimit"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newMini starts a miniredis whose clock stands still until the test moves it, and a client.
func newMini(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	m := miniredis.RunT(t)
	m.SetTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return m, c
}

// admitConcurrently has 8 goroutines make calls calls each, goroutine g through deciders[g %
// len(deciders)], and returns how many were admitted.
func admitConcurrently(t *testing.T, deciders []ratelimit.Decider, key string, calls int) int64 {
	t.Helper()
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		d := deciders[g%len(deciders)]
		wg.Go(func() {
			for range calls {
				res, err := d.Decide(context.Background(), key, 1)
				if assert.NoError(t, err) && res.Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return admitted.Load()
}

// advance moves miniredis's clock (TIME) and its TTLs forward together.
func advance(m *miniredis.Miniredis, d time.Duration, now *time.Time) {
	*now = now.Add(d)
	m.SetTime(*now)
	m.FastForward(d)
}

var algorithms = []Algorithm{GCRA, TokenBucket}

// TestRedisTimeline is the contract both algorithms share: the same requests get the same
// answers.
func TestRedisTimeline(t *testing.T) {
	type rstep struct {
		advance time.Duration
		n       int
		want    ratelimit.Result
	}
	lim := ratelimit.Limit{Rate: 10, Burst: 3} // one token per 100 ms
	ms := time.Millisecond
	steps := []rstep{
		{0, 1, ratelimit.Result{Allowed: true, Remaining: 2, Reset: 100 * ms}},
		{0, 2, ratelimit.Result{Allowed: true, Remaining: 0, Reset: 300 * ms}},
		{0, 1, ratelimit.Result{Allowed: false, Remaining: 0, RetryAfter: 100 * ms, Reset: 300 * ms}},
		{50 * ms, 1, ratelimit.Result{Allowed: false, Remaining: 0, RetryAfter: 50 * ms, Reset: 250 * ms}},
		{50 * ms, 1, ratelimit.Result{Allowed: true, Remaining: 0, Reset: 300 * ms}},
		{0, 0, ratelimit.Result{Allowed: true, Remaining: 0, Reset: 300 * ms}},
		{time.Hour, 3, ratelimit.Result{Allowed: true, Remaining: 0, Reset: 300 * ms}},
		{250 * ms, 3, ratelimit.Result{Allowed: false, Remaining: 2, RetryAfter: 50 * ms, Reset: 50 * ms}},
	}
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			m, c := newMini(t)
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			r, err := New(Options{Client: c, Limit: lim, Algorithm: alg})
			require.NoError(t, err)
			for i, s := range steps {
				advance(m, s.advance, &now)
				got, err := r.Decide(t.Context(), "user", s.n)
				require.NoError(t, err)
				s.want.Limit = lim
				assert.Equal(t, s.want, got, "step %d", i)
			}
		})
	}
}

func TestRedisKeysArePrefixedAndExpire(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			m, c := newMini(t)
			r, err := New(Options{Client: c, Limit: ratelimit.PerMinute(60), Algorithm: alg, Prefix: "rl:api:"})
			require.NoError(t, err)
			assert.Equal(t, "rl:api:alice", r.Key("alice"))
			_, err = r.Decide(t.Context(), "alice", 30)
			require.NoError(t, err)
			require.True(t, m.Exists("rl:api:alice"))
			assert.Equal(t, 30*time.Second, m.TTL("rl:api:alice"), "the key lives until the bucket is full")
			m.FastForward(30 * time.Second)
			assert.False(t, m.Exists("rl:api:alice"))
		})
	}
}

func TestRedisConcurrentAdmitsExactlyTheBurst(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			_, c := newMini(t) // the clock stands still: no refill
			r, err := New(Options{Client: c, Limit: ratelimit.PerHour(25), Algorithm: alg})
			require.NoError(t, err)
			assert.Equal(t, int64(25), admitConcurrently(t, []ratelimit.Decider{r}, "k", 10))
		})
	}
}

// TestRedisOneRoundTrip counts the commands a decision sends.
func TestRedisOneRoundTrip(t *testing.T) {
	_, c := newMini(t)
	var cmds atomic.Int64
	c.AddHook(countHook{&cmds})
	r, err := New(Options{Client: c, Limit: ratelimit.PerSecond(100)})
	require.NoError(t, err)
	_, err = r.Allow(t.Context(), "k") // loads the script: EVALSHA, NOSCRIPT, EVAL
	require.NoError(t, err)
	cmds.Store(0)
	for range 10 {
		_, err = r.Allow(t.Context(), "k")
		require.NoError(t, err)
	}
	assert.Equal(t, int64(10), cmds.Load())
}

type countHook struct{ n *atomic.Int64 }

func (countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestRedisFailurePolicy(t *testing.T) {
	tests := []struct {
		policy  FailurePolicy
		allowed bool
	}{{FailOpen, true}, {FailClosed, false}}
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			m, c := newMini(t)
			var calls []error
			var decided []bool
			r, err := New(Options{
				Client: c, Limit: ratelimit.PerSecond(1), Failure: tt.policy, Backoff: Backoff{Initial: time.Hour},
				Hooks: Hooks{OnFallback: func(_ context.Context, info FallbackInfo) {
					assert.Equal(t, "k", info.Key)
					calls = append(calls, info.Err)
					decided = append(decided, info.Allowed)
				}},
			})
			require.NoError(t, err)
			m.Close()
			for range 3 {
				res, err := r.Allow(t.Context(), "k")
				require.NoError(t, err, "the policy decided: no error")
				assert.Equal(t, tt.allowed, res.Allowed)
				assert.True(t, res.Fallback)
				if !tt.allowed {
					assert.GreaterOrEqual(t, res.RetryAfter, time.Second)
				}
			}
			require.Len(t, calls, 3)
			assert.NotErrorIs(t, calls[0], ErrUnavailable, "the first failure is Redis's own error")
			assert.ErrorContains(t, calls[0], "redislimit: redis: ")
			assert.ErrorIs(t, calls[1], ErrUnavailable, "then Limiter is not asked during the backoff")
			assert.ErrorIs(t, calls[2], ErrUnavailable)
			assert.Equal(t, []bool{tt.allowed, tt.allowed, tt.allowed}, decided)
		})
	}
}

func TestRedisRecovers(t *testing.T) {
	m, c := newMini(t)
	var recovered atomic.Int64
	r, err := New(Options{
		Client: c, Limit: ratelimit.PerHour(1), Failure: FailClosed, NoBackoff: true,
		Hooks: Hooks{OnRecover: func(RecoverInfo) { recovered.Add(1) }},
	})
	require.NoError(t, err)
	m.Close()
	res, err := r.Allow(t.Context(), "k")
	require.NoError(t, err)
	require.True(t, res.Fallback)
	require.False(t, res.Allowed)
	require.NoError(t, m.Restart())
	res, err = r.Allow(t.Context(), "k")
	require.NoError(t, err)
	assert.False(t, res.Fallback)
	assert.True(t, res.Allowed)
	assert.Equal(t, int64(1), recovered.Load())
	res, err = r.Allow(t.Context(), "k")
	require.NoError(t, err)
	assert.False(t, res.Allowed, "Redis decides again")
	assert.Equal(t, int64(1), recovered.Load())
}

func TestRedisCallerContextIsNotAFailure(t *testing.T) {
	_, c := newMini(t)
	r, err := New(Options{Client: c, Limit: ratelimit.PerSecond(1), Hooks: Hooks{
		OnFallback: func(context.Context, FallbackInfo) { t.Error("a canceled caller is not a Limiter failure") },
	}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, err := r.Allow(ctx, "k")
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, res.Allowed)
}

func TestRedisBadInput(t *testing.T) {
	_, c := newMini(t)
	r, err := New(Options{Client: c, Limit: ratelimit.PerSecond(2)})
	require.NoError(t, err)
	tests := []struct {
		key  string
		n    int
		want error
	}{{"", 1, ratelimit.ErrEmptyKey}, {"k", -1, ratelimit.ErrInvalidN}, {"k", 3, ratelimit.ErrExceedsBurst}}
	for _, tt := range tests {
		_, err := r.Decide(t.Context(), tt.key, tt.n)
		assert.ErrorIs(t, err, tt.want)
	}
	var nilR *Limiter
	_, err = nilR.Allow(t.Context(), "k")
	assert.ErrorIs(t, err, ratelimit.ErrInvalidLimit)

	_, err = New(Options{Limit: ratelimit.Limit{}, Algorithm: 7, Failure: 9, Timeout: -1, Backoff: Backoff{Initial: -1, Jitter: 2}})
	require.Error(t, err)
	for _, want := range []string{"Client is nil", "invalid limit", "Algorithm(7)", "FailurePolicy(9)", "Timeout", "redislimit: Backoff.Initial -1ns is negative", "Backoff.Jitter 2"} {
		assert.ErrorContains(t, err, want)
	}
}

func TestRedisInfiniteLimitSkipsRedis(t *testing.T) {
	m, c := newMini(t)
	m.Close()
	r, err := New(Options{Client: c, Limit: ratelimit.Limit{Rate: ratelimit.Inf}, Failure: FailClosed})
	require.NoError(t, err)
	res, err := r.Decide(t.Context(), "k", 1000)
	require.NoError(t, err)
	assert.True(t, res.Allowed)
	assert.False(t, res.Fallback)
}

func TestRedisScriptErrorIsAFailure(t *testing.T) {
	m, c := newMini(t)
	require.NoError(t, m.Set("ratelimit:k", "not a number"))
	var got error
	r, err := New(Options{Client: c, Limit: ratelimit.PerSecond(1), Failure: FailClosed,
		Hooks: Hooks{OnFallback: func(_ context.Context, info FallbackInfo) { got = info.Err }}})
	require.NoError(t, err)
	res, err := r.Allow(t.Context(), "k")
	require.NoError(t, err)
	assert.True(t, res.Fallback)
	assert.Error(t, got)
	assert.False(t, errors.Is(got, ErrUnavailable))
}

func BenchmarkRedisAllowMiniredis(b *testing.B) {
	m := miniredis.NewMiniRedis()
	require.NoError(b, m.Start())
	defer m.Close()
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer c.Close()
	r, _ := New(Options{Client: c, Limit: ratelimit.Limit{Rate: 1e6, Burst: 1000}})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = r.Allow(ctx, "k")
	}
}

// TestRedisLeaseContract checks the scripts' need/want form the hybrid limiter leases with:
// admit if need tokens are there, then take up to want.
func TestRedisLeaseContract(t *testing.T) {
	type lstep struct {
		advance    time.Duration
		need, want int
		allowed    bool
		taken      int
		remaining  int
		retryAfter time.Duration
	}
	steps := []lstep{
		{0, 1, 4, true, 4, 6, 0},
		{0, 1, 8, true, 6, 0, 0},
		{0, 1, 1, false, 0, 0, time.Second},
		{2500 * time.Millisecond, 3, 5, false, 0, 2, 500 * time.Millisecond},
		{0, 2, 5, true, 2, 0, 0},
		{0, 0, 0, true, 0, 0, 0},
	}
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			m, c := newMini(t)
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			r, err := New(Options{Client: c, Limit: ratelimit.Limit{Rate: 1, Burst: 10}, Algorithm: alg})
			require.NoError(t, err)
			for i, s := range steps {
				advance(m, s.advance, &now)
				res, taken, err := r.take(t.Context(), "k", s.need, s.want)
				require.NoError(t, err)
				got := lstep{s.advance, s.need, s.want, res.Allowed, taken, res.Remaining, res.RetryAfter}
				assert.Equal(t, s, got, "step %d", i)
			}
		})
	}
}

// TestRedisSilentServerIsBounded: a server that accepts connections and never answers costs a
// decision no more than the limiter's Timeout, or, without one, the client's ReadTimeout; either
// way the failure policy decides. (go-redis applies a context deadline to reads only with
// ContextTimeoutEnabled.)
func TestRedisSilentServerIsBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() { // accept and hold every connection, answering nothing, until the listener closes
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	tests := []struct {
		name        string
		timeout     time.Duration
		readTimeout time.Duration
	}{
		{"limiter Timeout", 50 * time.Millisecond, 5 * time.Second},
		{"client ReadTimeout", 0, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1,
				ReadTimeout: tt.readTimeout, ContextTimeoutEnabled: true})
			t.Cleanup(func() { c.Close() })
			r, err := New(Options{Client: c, Limit: ratelimit.Limit{Rate: 10, Burst: 10}, Timeout: tt.timeout,
				Failure: FailClosed, NoBackoff: true})
			require.NoError(t, err)
			start := time.Now()
			res, err := r.Allow(context.Background(), "k")
			require.NoError(t, err)
			assert.True(t, res.Fallback)
			assert.False(t, res.Allowed)
			assert.Less(t, time.Since(start), time.Second, "the decision waited for the server")
		})
	}
}

// TestRedisExceedsBurstContract: the Redis and Hybrid limiters keep the contract of
// TestDecideExceedsBurstContract with both algorithms.
func TestRedisExceedsBurstContract(t *testing.T) {
	for _, alg := range algorithms {
		t.Run(alg.String(), func(t *testing.T) {
			_, c := newMini(t)
			r, err := New(Options{Client: c, Limit: ratelimit.PerMinute(10), Algorithm: alg, Prefix: "a:"})
			require.NoError(t, err)
			checkExceedsBurst(t, r)
			r2, err := New(Options{Client: c, Limit: ratelimit.PerMinute(10), Algorithm: alg, Prefix: "b:"})
			require.NoError(t, err)
			checkExceedsBurst(t, newHybrid(t, r2, HybridOptions{LeaseSize: 1}))
		})
	}
}
