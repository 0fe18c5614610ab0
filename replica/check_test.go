package replica

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// readsGoTo reads n times and returns how many reads each node served.
func readsGoTo(t *testing.T, r *Router, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		db, err := r.Reader(t.Context())
		require.NoError(t, err)
		got[nameOf(db)]++
	}
	return got
}

func TestChecksFollowNodesEachInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rs, opts := fakeCluster(2)
		opts.CheckInterval = 200 * time.Millisecond
		r := newReady(t, opts)
		assert.Equal(t, map[string]int{"replica-0": 5, "replica-1": 5}, readsGoTo(t, r, 10))

		rs[0].set(Probe{}, errors.New("connection refused"))
		advance(150 * time.Millisecond)
		assert.Equal(t, map[string]int{"replica-0": 5, "replica-1": 5}, readsGoTo(t, r, 10), "the view changes only with a check")
		advance(50 * time.Millisecond)
		assert.Equal(t, map[string]int{"replica-1": 10}, readsGoTo(t, r, 10), "one interval later the replica is out")
		st := r.Status()
		assert.False(t, st[1].Up)
		assert.ErrorContains(t, st[1].Err, "connection refused")
		assert.Equal(t, RoleReplica, st[1].Role, "the last role found is kept")

		rs[0].set(Probe{InRecovery: true, LSN: 1000}, nil)
		advance(200 * time.Millisecond)
		assert.Equal(t, map[string]int{"replica-0": 5, "replica-1": 5}, readsGoTo(t, r, 10), "back in after the next check")

		rs[0].set(Probe{}, errors.New("down"))
		rs[1].set(Probe{}, errors.New("down"))
		advance(200 * time.Millisecond)
		assert.Equal(t, map[string]int{"primary": 10}, readsGoTo(t, r, 10), "no replica: the primary reads")
	})
}

func TestCheckTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rs, opts := fakeCluster(2)
		opts.CheckInterval, opts.CheckTimeout = time.Second, 100*time.Millisecond
		rs[1].hang = true
		start := time.Now()
		r := newReady(t, opts)
		assert.Equal(t, 100*time.Millisecond, time.Since(start), "a hanging node delays the round by CheckTimeout only")
		st := r.Status()
		assert.False(t, st[2].Up)
		assert.ErrorIs(t, st[2].Err, context.DeadlineExceeded)
		assert.Equal(t, map[string]int{"replica-0": 4}, readsGoTo(t, r, 4))
		r.Close() // cancels the hanging probe of the next round
	})
}

func TestStatusReportsLagAndRoles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, rs, opts := fakeCluster(2)
		p.setLSN(5000)
		rs[0].set(Probe{InRecovery: true, LSN: 4000, ReplayDelay: 2 * time.Second}, nil)
		rs[1].setLSN(5000)
		opts.MaxLagBytes = 500
		r := newReady(t, opts)
		st := r.Status()
		require.Len(t, st, 3)
		want := []struct {
			name string
			role Role
			fit  bool
			lag  uint64
			lagT time.Duration
		}{
			{"primary", RolePrimary, false, 0, 0},
			{"replica-0", RoleReplica, false, 1000, 2 * time.Second},
			{"replica-1", RoleReplica, true, 0, 0},
		}
		for i, w := range want {
			assert.Equal(t, w.name, st[i].Name)
			assert.Equal(t, w.role, st[i].Role, w.name)
			assert.Equal(t, w.fit, st[i].Fit, w.name)
			assert.Equal(t, w.lag, st[i].LagBytes, w.name)
			assert.Equal(t, w.lagT, st[i].LagTime, w.name)
			assert.True(t, st[i].Up, w.name)
			assert.False(t, st[i].CheckedAt.IsZero(), w.name)
		}
		r.opts.NoFallback = true
		rs[1].set(Probe{}, errors.New("gone"))
		advance(time.Second)
		_, err := r.Reader(t.Context())
		var nre *NoReplicaError
		require.ErrorAs(t, err, &nre)
		assert.Equal(t, "replica: no fit replica: replica-0: lagging: 1000 bytes behind, more than MaxLagBytes 500; replica-1: gone", err.Error())
	})
}

func TestHooksAndLogger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, rs, opts := fakeCluster(1)
		var (
			mu      sync.Mutex
			changes []string
			logs    bytes.Buffer
		)
		opts.Hooks.OnNodeChange = func(info NodeChangeInfo) {
			st := info.New
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, st.Name+":"+st.Role.String()+":"+map[bool]string{true: "up", false: "down"}[st.Up])
		}
		opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		r := newReady(t, opts)
		rs[0].set(Probe{}, errors.New("refused"))
		advance(time.Second)
		advance(time.Second) // no change: no call
		rs[0].set(Probe{LSN: 2000}, nil)
		advance(time.Second)
		r.Close()
		assert.Equal(t, []string{"primary:primary:up", "replica-0:replica:up", "replica-0:replica:down", "replica-0:primary:up"}, changes)
		assert.Equal(t, 4, strings.Count(logs.String(), "replica: node changed"))
		assert.Contains(t, logs.String(), "level=WARN")
	})
}

func TestProbePanicIsAnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, _, opts := fakeCluster(1)
		opts.Probe = func(ctx context.Context, db DB) (Probe, error) {
			if nameOf(db) == "replica-0" {
				panic("boom")
			}
			return fakeProbe(ctx, db)
		}
		r := newReady(t, opts)
		st := r.Status()
		assert.False(t, st[1].Up)
		assert.ErrorContains(t, st[1].Err, "probe panicked: boom")
	})
}

func TestCloseStopsChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _, opts := fakeCluster(1)
		r := newReady(t, opts)
		advance(3 * time.Second)
		assert.Equal(t, int64(4), p.probes.Load(), "one check at start and one per interval")
		r.Close()
		r.Close() // idempotent
		advance(3 * time.Second)
		assert.Equal(t, int64(4), p.probes.Load())

		ctx := t.Context()
		_, err := r.Reader(ctx)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = r.Writer(ctx)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = r.Exec(ctx, "x")
		assert.ErrorIs(t, err, ErrClosed)
		_, err = r.WriteQuery(ctx, "x")
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, r.WriteQueryRow(ctx, "x").Scan(), ErrClosed)
		assert.ErrorIs(t, r.ReadQueryRow(ctx, "x").Scan(), ErrClosed)
		_, err = r.ReadQuery(ctx, "x")
		assert.ErrorIs(t, err, ErrClosed)
		_, err = r.Begin(ctx)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = r.BeginTx(ctx, pgx.TxOptions{})
		assert.ErrorIs(t, err, ErrClosed)
		_, _, err = r.ExecToken(ctx, "x")
		assert.ErrorIs(t, err, ErrClosed)
		_, err = r.Token(ctx)
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, r.Ready(ctx), ErrClosed)
		assert.NotEmpty(t, r.Status(), "the last status stays readable")
	})
}

func TestNilRouter(t *testing.T) {
	var r *Router
	r.Close()
	_, err := r.Reader(t.Context())
	assert.ErrorIs(t, err, ErrClosed)
	_, err = r.Writer(t.Context())
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, r.Ready(t.Context()), ErrClosed)
	assert.Nil(t, r.Status())
}

func TestRoleString(t *testing.T) {
	assert.Equal(t, "unknown", RoleUnknown.String())
	assert.Equal(t, "primary", RolePrimary.String())
	assert.Equal(t, "replica", RoleReplica.String())
	assert.Equal(t, "token-waited", ReasonTokenWaited.String())
	assert.Equal(t, "Reason(99)", Reason(99).String())
}

func TestDownAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, rs, opts := fakeCluster(2)
		opts.DownAfter = 3
		r := newReady(t, opts)
		p.set(Probe{}, errors.New("lost"))
		rs[0].set(Probe{}, errors.New("lost"))
		for check := 1; check <= 2; check++ {
			advance(time.Second)
			_, err := r.Writer(t.Context())
			require.NoError(t, err, "check %d: the primary keeps the writes", check)
			assert.Equal(t, map[string]int{"replica-0": 2, "replica-1": 2}, readsGoTo(t, r, 4), "check %d", check)
			st := r.Status()
			assert.True(t, st[1].Up)
			assert.ErrorContains(t, st[1].Err, "lost", "the failure is visible before it counts")
		}
		p.set(Probe{LSN: 1000}, nil)
		advance(time.Second)
		_, err := r.Writer(t.Context())
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"replica-1": 4}, readsGoTo(t, r, 4), "the third failure in a row counts")
		p.set(Probe{}, errors.New("lost"))
		advance(time.Second)
		_, err = r.Writer(t.Context())
		require.NoError(t, err, "a success reset the primary's count")
	})
}
