package replica

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newReady builds a router over the fakes and waits for its first round of checks.
func newReady(t *testing.T, opts Options) *Router {
	t.Helper()
	r := newRecorded(t, opts)
	require.NoError(t, r.Ready(t.Context()))
	return r
}

// lastRoute keeps the latest decision reported by the OnRoute hook, per router.
var lastRoute sync.Map // *Router → *RouteInfo

// newRecorded builds a router whose OnRoute hook records into lastRoute.
func newRecorded(t *testing.T, opts Options) *Router {
	t.Helper()
	rec := &atomic.Pointer[RouteInfo]{}
	opts.Hooks.OnRoute = func(_ context.Context, rt RouteInfo) { rec.Store(&rt) }
	r, err := New(opts)
	require.NoError(t, err)
	lastRoute.Store(r, rec)
	t.Cleanup(func() { r.Close(); lastRoute.Delete(r) })
	return r
}

// route returns where Reader sends a read with ctx, and why.
func route(t *testing.T, r *Router, ctx context.Context) (string, Reason, error) {
	t.Helper()
	db, err := r.Reader(ctx)
	if err != nil {
		return "", 0, err
	}
	rec, _ := lastRoute.Load(r)
	got := rec.(*atomic.Pointer[RouteInfo]).Load()
	require.Equal(t, got.Node, nameOf(db), "the hook names the node returned")
	return got.Node, got.Reason, nil
}

// advance lets fake time pass inside a synctest bubble and waits for the bubble to settle.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func TestReadRouting(t *testing.T) {
	down := errors.New("dial: connection refused")
	tests := []struct {
		name    string
		setup   func(p *fakeDB, rs []*fakeDB, o *Options)
		token   uint64
		policy  *TokenPolicy
		want    []string // acceptable nodes
		reason  Reason
		wantErr error
	}{
		{name: "healthy replicas", want: []string{"replica-0", "replica-1"}, reason: ReasonReplica},
		{name: "one replica down", setup: func(_ *fakeDB, rs []*fakeDB, _ *Options) { rs[0].set(Probe{}, down) },
			want: []string{"replica-1"}, reason: ReasonReplica},
		{name: "all replicas down", setup: func(_ *fakeDB, rs []*fakeDB, _ *Options) { rs[0].set(Probe{}, down); rs[1].set(Probe{}, down) },
			want: []string{"primary"}, reason: ReasonFallback},
		{name: "all replicas down, no fallback", setup: func(_ *fakeDB, rs []*fakeDB, o *Options) {
			rs[0].set(Probe{}, down)
			rs[1].set(Probe{}, down)
			o.NoFallback = true
		}, wantErr: down},
		{name: "lag in bytes over the limit", setup: func(_ *fakeDB, rs []*fakeDB, o *Options) { rs[0].setLSN(100); o.MaxLagBytes = 500 },
			want: []string{"replica-1"}, reason: ReasonReplica},
		{name: "lag in time over the limit", setup: func(_ *fakeDB, rs []*fakeDB, o *Options) {
			rs[1].set(Probe{InRecovery: true, LSN: 1000, ReplayDelay: 3 * time.Second}, nil)
			o.MaxLagTime = time.Second
		}, want: []string{"replica-0"}, reason: ReasonReplica},
		{name: "all lagging, no fallback", setup: func(_ *fakeDB, rs []*fakeDB, o *Options) {
			rs[0].setLSN(1)
			rs[1].setLSN(2)
			o.MaxLagBytes, o.NoFallback = 10, true
		}, wantErr: ErrLagging},
		{name: "lag within the limit", setup: func(_ *fakeDB, rs []*fakeDB, o *Options) { rs[0].setLSN(900); o.MaxLagBytes = 500 },
			want: []string{"replica-0", "replica-1"}, reason: ReasonReplica},
		{name: "primary down: reads go on", setup: func(p *fakeDB, _ []*fakeDB, _ *Options) { p.set(Probe{}, down) },
			want: []string{"replica-0", "replica-1"}, reason: ReasonReplica},
		{name: "everything down", setup: func(p *fakeDB, rs []*fakeDB, _ *Options) {
			p.set(Probe{}, down)
			rs[0].set(Probe{}, down)
			rs[1].set(Probe{}, down)
		}, wantErr: ErrNoPrimary},
		{name: "token replayed by both", token: 1000, want: []string{"replica-0", "replica-1"}, reason: ReasonTokenReplica},
		{name: "token replayed by one", setup: func(_ *fakeDB, rs []*fakeDB, _ *Options) { rs[0].setLSN(900) }, token: 950,
			want: []string{"replica-1"}, reason: ReasonTokenReplica},
		{name: "token replayed by none", setup: func(_ *fakeDB, rs []*fakeDB, _ *Options) { rs[0].setLSN(900); rs[1].setLSN(900) },
			token: 950, want: []string{"primary"}, reason: ReasonTokenFallback},
		{name: "token replayed by none, no fallback", setup: func(_ *fakeDB, rs []*fakeDB, _ *Options) { rs[0].setLSN(900); rs[1].setLSN(900) },
			token: 950, policy: &TokenPolicy{NoFallback: true}, wantErr: ErrStale},
		{name: "token, default policy forbids fallback", setup: func(_ *fakeDB, rs []*fakeDB, o *Options) {
			rs[0].setLSN(900)
			rs[1].setLSN(900)
			o.TokenPolicy.NoFallback = true
		}, token: 950, wantErr: ErrStale},
		{name: "token, no replica fit", setup: func(_ *fakeDB, rs []*fakeDB, _ *Options) { rs[0].set(Probe{}, down); rs[1].set(Probe{}, down) },
			token: 10, policy: &TokenPolicy{Wait: time.Second}, want: []string{"primary"}, reason: ReasonTokenFallback},
		{name: "promoted replica", setup: func(p *fakeDB, rs []*fakeDB, _ *Options) {
			p.set(Probe{InRecovery: true, LSN: 1000}, nil)
			rs[0].set(Probe{LSN: 1000}, nil)
		}, want: []string{"primary", "replica-1"}, reason: ReasonReplica},
		{name: "no replicas configured", setup: func(_ *fakeDB, _ []*fakeDB, o *Options) { o.Replicas = nil },
			want: []string{"primary"}, reason: ReasonFallback},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, rs, opts := fakeCluster(2)
				if tc.setup != nil {
					tc.setup(p, rs, &opts)
				}
				r := newReady(t, opts)
				ctx := t.Context()
				if tc.token != 0 {
					ctx = WithToken(ctx, TokenAt(tc.token))
				}
				if tc.policy != nil {
					ctx = WithTokenPolicy(ctx, TokenAt(tc.token), *tc.policy)
				}
				seen := map[string]bool{}
				for range 8 {
					name, reason, err := route(t, r, ctx)
					if tc.wantErr != nil {
						require.ErrorIs(t, err, tc.wantErr)
						return
					}
					require.NoError(t, err)
					assert.Equal(t, tc.reason, reason)
					seen[name] = true
				}
				for name := range seen {
					assert.Contains(t, tc.want, name)
				}
				if tc.reason == ReasonReplica {
					assert.Len(t, seen, len(tc.want), "round robin reaches every fit replica")
				}
			})
		})
	}
}

func TestWriteRouting(t *testing.T) {
	down := errors.New("dial: connection refused")
	tests := []struct {
		name    string
		setup   func(p *fakeDB, rs []*fakeDB)
		want    string
		wantErr []error
	}{
		{name: "primary", want: "primary"},
		{name: "primary down", setup: func(p *fakeDB, _ []*fakeDB) { p.set(Probe{}, down) }, wantErr: []error{ErrNoPrimary, down, ErrInRecovery}},
		{name: "demoted primary", setup: func(p *fakeDB, _ []*fakeDB) { p.set(Probe{InRecovery: true}, nil) }, wantErr: []error{ErrNoPrimary, ErrInRecovery}},
		{name: "promoted replica", setup: func(p *fakeDB, rs []*fakeDB) { p.set(Probe{InRecovery: true}, nil); rs[1].set(Probe{LSN: 5}, nil) }, want: "replica-1"},
		{name: "promoted replica, old primary down", setup: func(p *fakeDB, rs []*fakeDB) { p.set(Probe{}, down); rs[0].set(Probe{LSN: 5}, nil) }, want: "replica-0"},
		{name: "split brain", setup: func(_ *fakeDB, rs []*fakeDB) { rs[0].set(Probe{LSN: 5}, nil) }, wantErr: []error{ErrNoPrimary, ErrSplitBrain}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, rs, opts := fakeCluster(2)
				if tc.setup != nil {
					tc.setup(p, rs)
				}
				r := newReady(t, opts)
				db, err := r.Writer(t.Context())
				for _, want := range tc.wantErr {
					require.ErrorIs(t, err, want)
				}
				if tc.wantErr != nil {
					var npe *NoPrimaryError
					require.ErrorAs(t, err, &npe)
					require.Len(t, npe.Nodes, 3, "one reason per node")
					_, err := r.Exec(t.Context(), "INSERT")
					require.ErrorIs(t, err, ErrNoPrimary)
					return
				}
				require.NoError(t, err)
				assert.Equal(t, tc.want, nameOf(db))
				_, err = r.Exec(t.Context(), "INSERT")
				require.NoError(t, err, "the write reached a node that accepts writes")
			})
		})
	}
}

func TestWritesNeverReachReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, rs, opts := fakeCluster(2)
		r := newReady(t, opts)
		ctx := t.Context()
		for range 20 {
			_, err := r.Exec(ctx, "INSERT")
			require.NoError(t, err)
			_, err = r.WriteQuery(ctx, "UPDATE … RETURNING")
			require.NoError(t, err)
			var s string
			require.NoError(t, r.WriteQueryRow(ctx, "INSERT … RETURNING").Scan(&s))
			require.Equal(t, "primary", s)
			_, err = r.Begin(ctx)
			require.ErrorContains(t, err, "fake: no transactions")
			var name string
			require.NoError(t, r.ReadQueryRow(ctx, "SELECT").Scan(&name))
			rows, err := r.ReadQuery(ctx, "SELECT")
			require.NoError(t, err)
			rows.Close()
		}
		assert.Equal(t, int64(80), p.writes.Load()+p.reads.Load())
		for _, rep := range rs {
			assert.Zero(t, rep.writes.Load())
			assert.Equal(t, int64(20), rep.reads.Load(), "reads spread evenly")
		}
	})
}

func TestBeforeFirstCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, rs, opts := fakeCluster(1)
		gate := make(chan struct{})
		p.block, rs[0].block = gate, gate
		r := newRecorded(t, opts)

		name, reason, err := route(t, r, t.Context())
		require.NoError(t, err)
		assert.Equal(t, "primary", name, "replica lag is unknown before the first check")
		assert.Equal(t, ReasonFallback, reason)
		w, err := r.Writer(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "primary", nameOf(w))
		for _, st := range r.Status() {
			assert.Equal(t, RoleUnknown, st.Role)
			assert.False(t, st.Up)
			assert.ErrorIs(t, st.Err, ErrNotChecked)
		}

		opts.NoFallback = true
		r2, err := New(opts)
		require.NoError(t, err)
		defer r2.Close()
		_, err = r2.Reader(t.Context())
		require.ErrorIs(t, err, ErrNotChecked)

		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond) // less than CheckTimeout
		defer cancel()
		require.ErrorIs(t, r.Ready(ctx), context.DeadlineExceeded)
		close(gate)
		require.NoError(t, r.Ready(t.Context()))
		name, reason, err = route(t, r, t.Context())
		require.NoError(t, err)
		assert.Equal(t, "replica-0", name)
		assert.Equal(t, ReasonReplica, reason)
	})
}

func TestTokenAndExecToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, rs, opts := fakeCluster(1)
		r := newReady(t, opts)
		p.setLSN(5000)
		tag, tok, err := r.ExecToken(t.Context(), "INSERT")
		require.NoError(t, err)
		assert.Equal(t, "INSERT 0 1", tag.String())
		assert.Equal(t, TokenAt(5000), tok)

		name, reason, err := route(t, r, WithToken(t.Context(), tok))
		require.NoError(t, err)
		assert.Equal(t, "primary", name, "the replica has not replayed 5000")
		assert.Equal(t, ReasonTokenFallback, reason)

		rs[0].setLSN(5000)
		advance(opts.withDefaults().CheckInterval)
		name, reason, err = route(t, r, WithToken(t.Context(), tok))
		require.NoError(t, err)
		assert.Equal(t, "replica-0", name)
		assert.Equal(t, ReasonTokenReplica, reason)

		p.set(Probe{InRecovery: true}, nil)
		_, err = r.Token(t.Context())
		require.ErrorIs(t, err, ErrInRecovery, "a node demoted since the last check gives no token")
		p.set(Probe{}, errors.New("broken"))
		_, err = r.Token(t.Context())
		require.ErrorContains(t, err, "broken")
	})
}

func TestTokenWait(t *testing.T) {
	tests := []struct {
		name      string
		catchUpAt time.Duration // when replica-1 replays the token; 0 = never
		policy    TokenPolicy
		want      string
		reason    Reason
		wantErr   error
		took      time.Duration
	}{
		{name: "caught up while waiting", catchUpAt: 25 * time.Millisecond, policy: TokenPolicy{Wait: time.Second, PollEvery: 10 * time.Millisecond},
			want: "replica-1", reason: ReasonTokenWaited, took: 30 * time.Millisecond},
		{name: "default poll step", catchUpAt: 240 * time.Millisecond, policy: TokenPolicy{Wait: time.Second},
			want: "replica-1", reason: ReasonTokenWaited, took: 250 * time.Millisecond},
		{name: "never caught up: primary after Wait", policy: TokenPolicy{Wait: 80 * time.Millisecond},
			want: "primary", reason: ReasonTokenFallback, took: 80 * time.Millisecond},
		{name: "never caught up: stale after Wait", policy: TokenPolicy{Wait: 80 * time.Millisecond, NoFallback: true},
			wantErr: ErrStale, took: 80 * time.Millisecond},
		{name: "caught up too late", catchUpAt: 200 * time.Millisecond, policy: TokenPolicy{Wait: 100 * time.Millisecond},
			want: "primary", reason: ReasonTokenFallback, took: 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, rs, opts := fakeCluster(2)
				opts.CheckInterval = time.Hour // only the wait can learn that the replica caught up
				r := newReady(t, opts)
				if tc.catchUpAt > 0 {
					time.AfterFunc(tc.catchUpAt, func() { rs[1].setLSN(2000) })
				}
				start := time.Now()
				name, reason, err := route(t, r, WithTokenPolicy(t.Context(), TokenAt(2000), tc.policy))
				assert.Equal(t, tc.took, time.Since(start))
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr)
					return
				}
				require.NoError(t, err)
				assert.Equal(t, tc.want, name)
				assert.Equal(t, tc.reason, reason)
			})
		})
	}
}

func TestTokenWaitTeachesOtherReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rs, opts := fakeCluster(2)
		opts.CheckInterval = time.Hour
		opts.TokenPolicy = TokenPolicy{Wait: time.Second}
		r := newReady(t, opts)
		rs[0].setLSN(2000)
		name, reason, err := route(t, r, WithToken(t.Context(), TokenAt(2000)))
		require.NoError(t, err)
		assert.Equal(t, "replica-0", name)
		assert.Equal(t, ReasonTokenWaited, reason)
		probes := rs[0].probes.Load()
		name, reason, err = route(t, r, WithToken(t.Context(), TokenAt(1500)))
		require.NoError(t, err)
		assert.Equal(t, "replica-0", name, "the position learnt by the wait serves the next read")
		assert.Equal(t, ReasonTokenReplica, reason)
		assert.Equal(t, probes, rs[0].probes.Load(), "without asking again")
	})
}

func TestTokenWaitHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, opts := fakeCluster(1)
		opts.TokenPolicy = TokenPolicy{Wait: time.Minute}
		r := newReady(t, opts)
		ctx, cancel := context.WithCancelCause(WithToken(t.Context(), TokenAt(5000)))
		time.AfterFunc(50*time.Millisecond, func() { cancel(errors.New("client went away")) })
		start := time.Now()
		_, err := r.Reader(ctx)
		require.ErrorIs(t, err, context.Canceled)
		assert.ErrorContains(t, err, "client went away", "the cause is kept")
		assert.Equal(t, 50*time.Millisecond, time.Since(start))

		dctx, dcancel := context.WithTimeout(WithToken(t.Context(), TokenAt(5000)), 70*time.Millisecond)
		defer dcancel()
		_, err = r.Reader(dctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestRoutingDoesNotAllocate(t *testing.T) {
	_, rs, opts := fakeCluster(2)
	opts.CheckInterval = time.Hour
	r, err := New(opts)
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.Ready(t.Context()))
	rs[0].setLSN(0)
	ctx := t.Context()
	tctx := WithToken(ctx, TokenAt(1000))
	for name, f := range map[string]func(){
		"Reader":       func() { _, _ = r.Reader(ctx) },
		"Reader+token": func() { _, _ = r.Reader(tctx) },
		"Writer":       func() { _, _ = r.Writer(ctx) },
	} {
		assert.Zero(t, testing.AllocsPerRun(1000, f), name)
	}
}

func BenchmarkRouting(b *testing.B) {
	_, _, opts := fakeCluster(2)
	opts.CheckInterval = time.Hour
	r, err := New(opts)
	require.NoError(b, err)
	defer r.Close()
	require.NoError(b, r.Ready(b.Context()))
	ctx := context.Background()
	tctx := WithToken(ctx, TokenAt(1000))
	for _, bc := range []struct {
		name string
		ctx  context.Context
		f    func(context.Context) (DB, error)
	}{
		{"Reader", ctx, r.Reader},
		{"Reader/token", tctx, r.Reader},
		{"Writer", ctx, r.Writer},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = bc.f(bc.ctx)
			}
		})
	}
	b.Run("Reader/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_, _ = r.Reader(ctx)
			}
		})
	})
}

func TestConcurrentWaitsShareTheirQuestions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rs, opts := fakeCluster(1)
		opts.CheckInterval = time.Hour
		r := newReady(t, opts)
		time.AfterFunc(95*time.Millisecond, func() { rs[0].setLSN(2000) })
		before := rs[0].probes.Load()
		policy := TokenPolicy{Wait: time.Second, PollEvery: 10 * time.Millisecond}
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				db, err := r.Reader(WithTokenPolicy(t.Context(), TokenAt(2000), policy))
				assert.NoError(t, err)
				assert.Equal(t, "replica-0", nameOf(db))
			})
		}
		wg.Wait()
		asked := rs[0].probes.Load() - before
		assert.LessOrEqual(t, asked, int64(11), "about one question per step, not one per waiting read")
		assert.GreaterOrEqual(t, asked, int64(10))
	})
}

func TestCloseEndsWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, opts := fakeCluster(1)
		opts.TokenPolicy = TokenPolicy{Wait: time.Minute}
		r := newReady(t, opts)
		time.AfterFunc(30*time.Millisecond, func() { r.Close() })
		start := time.Now()
		_, err := r.Reader(WithToken(t.Context(), TokenAt(5000)))
		require.ErrorIs(t, err, ErrClosed)
		assert.Less(t, time.Since(start), 100*time.Millisecond)
	})
}

// TestRouterIsNotADB keeps the Router from satisfying DB: code written against DB (or a pool)
// calls Query for its reads, and a Router there would send every one of them to the primary.
func TestRouterIsNotADB(t *testing.T) {
	var r any = (*Router)(nil)
	_, ok := r.(DB)
	assert.False(t, ok, "a *Router must not satisfy DB: its reads are ReadQuery, its primary queries WriteQuery")
}
