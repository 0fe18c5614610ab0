package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/internal/testenv"
)

// countingDB counts the queries a router sends to a real pool, leaving its checks aside.
type countingDB struct {
	DB
	reads, writes atomic.Int64
}

func (c *countingDB) isProbe(sql string) bool { return sql == probeSQL }

func (c *countingDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c.writes.Add(1)
	return c.DB.Exec(ctx, sql, args...)
}

func (c *countingDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if !c.isProbe(sql) {
		c.reads.Add(1)
	}
	return c.DB.QueryRow(ctx, sql, args...)
}

// seenDown waits until the router's checks see the nodes at idx as down, which must take no longer
// than one check interval plus the check timeout (with a little room for scheduling).
func seenDown(t testing.TB, r *Router, limit time.Duration, idx ...int) {
	t.Helper()
	eventually(t, limit+500*time.Millisecond, func() error {
		st := r.Status()
		for _, i := range idx {
			if st[i].Up {
				return fmt.Errorf("%s is still up", st[i].Name)
			}
		}
		return nil
	})
}

// eventually polls f every 50 ms until it returns nil or limit has passed.
func eventually(t testing.TB, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPostgresCluster runs every scenario against one primary with two streaming replicas, in
// sequence, since each container costs seconds to start.
func TestPostgresCluster(t *testing.T) {
	cl := testenv.StartPostgresCluster(t, 2)
	primary := &countingDB{DB: cl.Primary.Pool(t)}
	reps := []*countingDB{{DB: cl.Replicas[0].Pool(t)}, {DB: cl.Replicas[1].Pool(t)}}
	const interval, timeout = 200 * time.Millisecond, time.Second
	var reasons sync.Map // Reason → *atomic.Int64 of routed calls, reset per subtest
	count := func(r Reason) int64 {
		v, _ := reasons.LoadOrStore(r, new(atomic.Int64))
		return v.(*atomic.Int64).Load()
	}
	r, err := New(Options{
		Primary:       Node{DB: primary},
		Replicas:      []Node{{DB: reps[0]}, {DB: reps[1]}},
		CheckInterval: interval,
		CheckTimeout:  timeout,
		TokenPolicy:   TokenPolicy{Wait: 2 * time.Second, PollEvery: 5 * time.Millisecond},
		Hooks: Hooks{OnRoute: func(_ context.Context, rt RouteInfo) {
			v, _ := reasons.LoadOrStore(rt.Reason, new(atomic.Int64))
			v.(*atomic.Int64).Add(1)
			if rt.Reason == ReasonWrite {
				assert.Equal(t, "primary", rt.Node, "writes go to the primary only")
			}
		}},
	})
	require.NoError(t, err)
	defer r.Close()
	ctx := t.Context()
	require.NoError(t, r.Ready(ctx))
	_, err = r.Exec(ctx, "CREATE TABLE rw (id int PRIMARY KEY)")
	require.NoError(t, err)

	t.Run("roles", func(t *testing.T) {
		st := r.Status()
		require.Len(t, st, 3)
		assert.Equal(t, RolePrimary, st[0].Role)
		for _, s := range st[1:] {
			assert.Equal(t, RoleReplica, s.Role, s.Name)
			assert.True(t, s.Fit, s.Name)
			assert.NotZero(t, s.LSN, s.Name)
		}
		p, err := SQLProbe(ctx, primary)
		require.NoError(t, err)
		assert.False(t, p.InRecovery)
		assert.GreaterOrEqual(t, p.LSN, st[0].LSN, "the insert position only moves forward")
	})

	t.Run("a token taken on an idle primary is replayed", func(t *testing.T) {
		// After a WAL switch the insert position lies past the next segment's page header, where
		// no replica's replay position will ever be until something else is written.
		_, err := primary.DB.Exec(ctx, "SELECT pg_switch_wal()")
		require.NoError(t, err)
		tok, err := r.Token(ctx)
		require.NoError(t, err)
		// Within a second, well before the background writer logs anything new (every 15 s).
		strict := WithTokenPolicy(ctx, tok, TokenPolicy{Wait: time.Second, PollEvery: 10 * time.Millisecond, NoFallback: true})
		var inRecovery bool
		require.NoError(t, r.ReadQueryRow(strict, "SELECT pg_is_in_recovery()").Scan(&inRecovery), "token %s", tok)
		require.True(t, inRecovery)
	})

	t.Run("reads spread over the replicas", func(t *testing.T) {
		before := []int64{primary.reads.Load(), reps[0].reads.Load(), reps[1].reads.Load()}
		for range 100 {
			var inRecovery bool
			require.NoError(t, r.ReadQueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
			require.True(t, inRecovery, "a read reached the primary")
		}
		assert.Equal(t, before[0], primary.reads.Load())
		for i, rep := range reps {
			assert.InDelta(t, 50, rep.reads.Load()-before[i+1], 15, "replica %d", i)
		}
	})

	t.Run("read your writes with replay paused on a replica", func(t *testing.T) {
		for _, rep := range reps {
			eventually(t, 10*time.Second, func() error {
				_, err := rep.DB.Exec(ctx, "SELECT FROM rw")
				return err
			})
		}
		paused := reps[0].DB
		_, err := paused.Exec(ctx, "SELECT pg_wal_replay_pause()")
		require.NoError(t, err)
		defer func() {
			_, err := paused.Exec(ctx, "SELECT pg_wal_replay_resume()")
			require.NoError(t, err)
		}()
		tokenReads := reps[0].reads.Load()
		stale, staleWithout := 0, 0
		for id := range 200 {
			_, tok, err := r.ExecToken(ctx, "INSERT INTO rw VALUES ($1)", id)
			require.NoError(t, err)
			var n int
			require.NoError(t, r.ReadQueryRow(WithToken(ctx, tok), "SELECT count(*) FROM rw WHERE id = $1", id).Scan(&n))
			if n == 0 {
				stale++
			}
			require.NoError(t, r.ReadQueryRow(ctx, "SELECT count(*) FROM rw WHERE id = $1", id).Scan(&n))
			if n == 0 {
				staleWithout++
			}
		}
		assert.Zero(t, stale, "stale reads among 200 read-your-writes reads")
		assert.Positive(t, staleWithout, "reads without a token do reach the paused replica, so the test can fail")
		assert.Positive(t, count(ReasonTokenReplica)+count(ReasonTokenWaited), "token reads were served by a replica")
		t.Logf("without a token %d of 200 reads were stale; token reads: %d on a replica at once, %d after waiting, %d on the primary; %d reads on the paused replica",
			staleWithout, count(ReasonTokenReplica), count(ReasonTokenWaited), count(ReasonTokenFallback), reps[0].reads.Load()-tokenReads)
		assert.Positive(t, r.Status()[1].LagBytes, "the paused replica lags")
	})

	t.Run("writes never reach a replica", func(t *testing.T) {
		for _, rep := range reps {
			assert.Zero(t, rep.writes.Load())
		}
		assert.Positive(t, primary.writes.Load())
	})

	t.Run("a stopped replica is skipped, then used again", func(t *testing.T) {
		cl.Replicas[0].Stop(t)
		seenDown(t, r, interval+timeout, 1) // at most one check later, reads must succeed
		before := reps[1].reads.Load()
		for range 50 {
			var one int
			require.NoError(t, r.ReadQueryRow(ctx, "SELECT 1").Scan(&one))
		}
		assert.Equal(t, int64(50), reps[1].reads.Load()-before, "every read went to the live replica")
		assert.False(t, r.Status()[1].Up)

		cl.Replicas[0].Start(t)
		eventually(t, 30*time.Second, func() error {
			before := reps[0].reads.Load()
			for range 4 {
				var one int
				if err := r.ReadQueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
					return err
				}
			}
			if reps[0].reads.Load() == before {
				return errors.New("the restarted replica serves no reads")
			}
			return nil
		})
	})

	t.Run("both replicas stopped: reads fall back to the primary", func(t *testing.T) {
		cl.Replicas[0].Stop(t)
		cl.Replicas[1].Stop(t)
		seenDown(t, r, interval+timeout, 1, 2)
		before := primary.reads.Load()
		for range 50 {
			var inRecovery bool
			require.NoError(t, r.ReadQueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
			require.False(t, inRecovery)
		}
		assert.Equal(t, int64(50), primary.reads.Load()-before)
	})

	t.Run("no primary: ErrNoPrimary with a reason per node", func(t *testing.T) {
		cl.Primary.Stop(t)
		seenDown(t, r, interval+timeout, 0)
		_, err := r.Exec(ctx, "INSERT INTO rw VALUES (-1)")
		require.ErrorIs(t, err, ErrNoPrimary)
		var npe *NoPrimaryError
		require.ErrorAs(t, err, &npe)
		assert.Len(t, npe.Nodes, 3)
		assert.Equal(t, 3, strings.Count(err.Error(), "; ")+1, err.Error())
		_, err = r.Reader(ctx)
		require.ErrorIs(t, err, ErrNoPrimary, "no replica and no primary to fall back to")
	})
}

// BenchmarkPostgres measures the router's cost per query against real servers: each "router"
// line minus the "bare" line above it is the routing overhead. It starts a cluster, so it runs
// only with -bench.
func BenchmarkPostgres(b *testing.B) {
	cl := testenv.StartPostgresCluster(b, 2)
	primary, rep0, rep1 := cl.Primary.Pool(b), cl.Replicas[0].Pool(b), cl.Replicas[1].Pool(b)
	newRouter := func(reps ...DB) *Router {
		// A loaded machine can hold a check up for a second: do not let that take a node out.
		opts := Options{Primary: Node{DB: primary}, CheckInterval: time.Second, CheckTimeout: 5 * time.Second, DownAfter: 3}
		for _, r := range reps {
			opts.Replicas = append(opts.Replicas, Node{DB: r, Name: fmt.Sprintf("r%p", r)})
		}
		r, err := New(opts)
		require.NoError(b, err)
		b.Cleanup(func() { r.Close() })
		require.NoError(b, r.Ready(b.Context()))
		return r
	}
	ctx := context.Background()
	one := newRouter(rep0)
	tok, err := one.Token(ctx)
	require.NoError(b, err)
	eventually(b, 10*time.Second, func() error { // until a check has seen rep0 replay tok: no waiting below
		if st := one.Status()[1]; st.LSN < tok.LSN() {
			return fmt.Errorf("%s has replayed %d, not yet %d", st.Name, st.LSN, tok.LSN())
		}
		return nil
	})
	tctx := WithToken(ctx, tok)
	for _, bc := range []struct {
		name        string
		bare, route func() pgx.Row
	}{
		{"read", func() pgx.Row { return rep0.QueryRow(ctx, "SELECT 1") }, func() pgx.Row { return one.ReadQueryRow(ctx, "SELECT 1") }},
		{"read-token", func() pgx.Row { return rep0.QueryRow(ctx, "SELECT 1") }, func() pgx.Row { return one.ReadQueryRow(tctx, "SELECT 1") }},
		{"write", func() pgx.Row { return primary.QueryRow(ctx, "SELECT 1") }, func() pgx.Row { return one.WriteQueryRow(ctx, "SELECT 1") }},
	} {
		b.Run("overhead/"+bc.name, func(b *testing.B) { benchOverhead(b, bc.bare, bc.route) })
	}

	for i, reps := range [][]DB{nil, {rep0}, {rep0, rep1}} {
		r := newRouter(reps...)
		b.Run(fmt.Sprintf("parallel-reads/replicas=%d", i), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var n int
				for pb.Next() {
					if err := r.ReadQueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// benchOverhead alternates a query on a bare pool with the same query through the router, so that
// both see the same load, and reports the medians of each and their difference.
func benchOverhead(b *testing.B, bare, routed func() pgx.Row) {
	b.ReportAllocs()
	var bareNs, routedNs []float64
	var n int
	run := func(row func() pgx.Row, into *[]float64) {
		start := time.Now()
		if err := row().Scan(&n); err != nil {
			b.Fatal(err)
		}
		*into = append(*into, float64(time.Since(start)))
	}
	i := 0
	for b.Loop() {
		if i++; i%2 == 0 {
			run(bare, &bareNs)
			run(routed, &routedNs)
		} else {
			run(routed, &routedNs)
			run(bare, &bareNs)
		}
	}
	mb, mr := median(bareNs), median(routedNs)
	b.ReportMetric(mb, "bare-ns/query")
	b.ReportMetric(mr, "routed-ns/query")
	b.ReportMetric(mr-mb, "overhead-ns/query")
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}
