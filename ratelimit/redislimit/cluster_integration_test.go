package redislimit

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/internal/testenv"
	"github.com/girder-go/girder/ratelimit"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIntegrationCluster runs the limiters on a real Redis Cluster (3 masters, 1 replica each),
// started once for the subtests: the shared limit and the hybrid's bound hold across instances,
// one tenant's keys spread over the masters (and meet on one slot only when a hash tag asks),
// and through a master's failover, graceful and by a kill, each limiter follows its failure
// policy and then decides on Redis again.
func TestIntegrationCluster(t *testing.T) {
	t.Parallel()
	rc := testenv.StartRedisCluster(t)
	newClient := func(t *testing.T) redis.Scripter { return rc.ClientTimeout(t, time.Second) }

	t.Run("instances share the limit", func(t *testing.T) {
		for _, alg := range algorithms {
			t.Run(alg.String(), func(t *testing.T) {
				limit := ratelimit.Limit{Rate: 200, Burst: 20}
				var ds []ratelimit.Decider
				for range 4 {
					r, err := New(Options{Client: newClient(t), Limit: limit, Algorithm: alg, Prefix: "it:" + alg.String() + ":"})
					require.NoError(t, err)
					ds = append(ds, r)
				}
				warm(t, ds)
				admitted, elapsed := hammer(t, ds, "shared", 300*time.Millisecond)
				bound := float64(limit.Burst) + limit.Rate*elapsed.Seconds()
				t.Logf("admitted %d in %v, bound %.1f", admitted, elapsed, bound)
				assert.LessOrEqual(t, float64(admitted), bound)
				assert.Greater(t, admitted, limit.Burst, "refills are admitted too")
			})
		}
	})

	t.Run("hybrid instances stay within the lease bound", func(t *testing.T) {
		limit := ratelimit.Limit{Rate: 200, Burst: 20}
		const procs, lease = 4, 5
		var ds []ratelimit.Decider
		for range procs {
			r, err := New(Options{Client: newClient(t), Limit: limit, Prefix: "it:hybrid:"})
			require.NoError(t, err)
			h, err := NewHybrid(HybridOptions{Redis: r, LeaseSize: lease, LeaseTTL: 50 * time.Millisecond})
			require.NoError(t, err)
			ds = append(ds, h)
		}
		warm(t, ds)
		admitted, elapsed := hammer(t, ds, "shared", 300*time.Millisecond)
		bound := float64(limit.Burst) + limit.Rate*elapsed.Seconds() + min(procs*lease, limit.Rate*0.05)
		t.Logf("admitted %d in %v, bound %.1f", admitted, elapsed, bound)
		assert.LessOrEqual(t, float64(admitted), bound)
		assert.Greater(t, admitted, limit.Burst)
	})

	t.Run("a tenant's keys spread unless a hash tag joins them", func(t *testing.T) {
		ctx := context.Background()
		spread, err := New(Options{Client: newClient(t), Limit: ratelimit.PerSecond(100), Prefix: "rl:tenant-a:"})
		require.NoError(t, err)
		joined, err := New(Options{Client: newClient(t), Limit: ratelimit.PerSecond(100), Prefix: "rl:{tenant-a}:"})
		require.NoError(t, err)
		spreadOn, joinedOn := map[string]int{}, map[string]int{}
		for i := range 30 {
			key := fmt.Sprint("user-", i)
			for _, r := range []*Limiter{spread, joined} {
				res, err := r.Allow(ctx, key)
				require.NoError(t, err)
				require.False(t, res.Fallback)
			}
			spreadOn[rc.MasterFor(t, spread.Key(key)).Alias()]++
			joinedOn[rc.MasterFor(t, joined.Key(key)).Alias()]++
		}
		t.Logf("30 keys of one tenant: %v without a hash tag, %v with one", spreadOn, joinedOn)
		assert.Len(t, spreadOn, 3, "keys land on every master")
		assert.Len(t, joinedOn, 1, "a hash tag puts them on one slot")
	})

	t.Run("failover", func(t *testing.T) {
		_, rng := testenv.Seed(t)
		soak := testenv.Soak(t, 0)
		deadline := time.Now().Add(soak)
		for {
			key := fmt.Sprint("tenant-", rng.IntN(1_000_000))
			failLimiters(t, newClient, "cluster CLUSTER FAILOVER", key, func(t *testing.T, prefix string) {
				rc.Failover(t, rc.MasterFor(t, prefix+key))
			})
			key = fmt.Sprint("tenant-", rng.IntN(1_000_000))
			var killed *testenv.Redis
			failLimiters(t, newClient, "cluster master killed", key, func(t *testing.T, prefix string) {
				killed = rc.MasterFor(t, prefix+key)
				rc.Kill(t, killed)
			})
			if time.Now().After(deadline) {
				break
			}
			rc.Restart(t, killed)
		}
	})
}

// TestIntegrationSentinel fails the primary of a Sentinel-watched pair over under the limiters,
// by SENTINEL FAILOVER and, with GIRDER_SOAK, by kills: each follows its failure policy meanwhile, then recovers.
func TestIntegrationSentinel(t *testing.T) {
	t.Parallel()
	rs := testenv.StartRedisSentinel(t)
	newClient := func(t *testing.T) redis.Scripter {
		o := rs.Options()
		o.ContextTimeoutEnabled = true
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = time.Second, time.Second, time.Second
		return rs.ClientWith(t, o)
	}
	_, rng := testenv.Seed(t)
	soak := testenv.Soak(t, 0)
	deadline := time.Now().Add(soak)
	for {
		failLimiters(t, newClient, "sentinel SENTINEL FAILOVER", fmt.Sprint("tenant-", rng.IntN(1_000_000)),
			func(t *testing.T, _ string) { rs.Failover(t) })
		if soak == 0 {
			// The kill runs on demand (GIRDER_SOAK): in one CI run, with the whole suite's
			// containers on two cores, the Sentinels did not agree on the killed primary within a
			// minute (one reached o_down, no leader was elected); not yet understood.
			break
		}
		var killed *testenv.Redis
		failLimiters(t, newClient, "sentinel primary killed", fmt.Sprint("tenant-", rng.IntN(1_000_000)),
			func(t *testing.T, _ string) { killed, _ = rs.Kill(t) })
		if time.Now().After(deadline) {
			break
		}
		rs.Restart(t, killed)
	}
}

// failLimiters runs a fail-open and a fail-closed Limiter and a fail-closed Hybrid on key while
// fault strikes, asking every 5 ms. A decision the failure policy made counts as a failed call
// (it must follow the policy: open admits, closed denies); the limiters must decide on Redis
// again afterwards. It also drains a bucket just before the fault and reports whether the
// failover forgot it (asynchronous replication loses the last writes a master did not pass on).
func failLimiters(t *testing.T, newClient func(*testing.T) redis.Scripter, name, key string, fault func(t *testing.T, prefix string)) {
	const prefix = "fo:"
	var violations atomic.Int64
	mk := func(p FailurePolicy) *Limiter {
		r, err := New(Options{Client: newClient(t), Limit: ratelimit.PerSecond(1e6), Failure: p, Prefix: prefix,
			Timeout: 300 * time.Millisecond, Backoff: Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
		require.NoError(t, err)
		return r
	}
	open, closed := mk(FailOpen), mk(FailClosed)
	hybrid, err := NewHybrid(HybridOptions{Redis: mk(FailClosed), LeaseSize: 1000, LeaseTTL: 100 * time.Millisecond})
	require.NoError(t, err)
	probe := func(label string, d ratelimit.Decider, policy FailurePolicy) *testenv.Probe {
		return testenv.StartProbe(name+", "+label, 5*time.Millisecond, func(ctx context.Context) error {
			res, err := d.Decide(ctx, key, 1)
			if err != nil {
				violations.Add(1)
				return err
			}
			if res.Fallback {
				if res.Allowed != (policy == FailOpen) {
					violations.Add(1)
				}
				return errors.New("decided by the failure policy")
			}
			if !res.Allowed {
				violations.Add(1)
				return errors.New("denied by Redis under a limit never reached")
			}
			return nil
		})
	}
	probes := []*testenv.Probe{probe("fail open", open, FailOpen), probe("fail closed", closed, FailClosed), probe("hybrid fail closed", hybrid, FailClosed)}

	// A bucket drained just before the fault: after it, a decision that admits means the new
	// master never had the drain.
	drained, err := New(Options{Client: newClient(t), Limit: ratelimit.PerHour(5), Prefix: prefix})
	require.NoError(t, err)
	dkey := key + ":drained"
	ctx := context.Background()
	for range 5 {
		res, err := drained.Allow(ctx, dkey)
		require.NoError(t, err)
		require.True(t, res.Allowed && !res.Fallback)
	}

	time.Sleep(200 * time.Millisecond)
	for _, p := range probes {
		p.Mark()
	}
	fault(t, prefix)
	// Every limiter decides on Redis again.
	require.Eventually(t, func() bool {
		for _, r := range []ratelimit.Decider{open, closed, hybrid} {
			res, err := r.Decide(ctx, key, 1)
			if err != nil || res.Fallback {
				return false
			}
		}
		return true
	}, 60*time.Second, 10*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	for _, p := range probes {
		r := p.Stop()
		t.Log(r)
	}
	res, err := drained.Allow(ctx, dkey)
	require.NoError(t, err)
	t.Logf("%s: a bucket drained just before the fault %s after it", name,
		map[bool]string{true: "admitted (the failover forgot the drain)", false: "still denied (nothing lost)"}[res.Allowed && !res.Fallback])
	assert.Zero(t, violations.Load(), "every decision follows Redis or the failure policy")
}

// warm has every decider decide once on a key of its own, so that the cluster clients know the
// slots and the scripts are loaded on every master before a measurement starts.
func warm(t *testing.T, ds []ratelimit.Decider) {
	t.Helper()
	for i, d := range ds {
		for j := range 6 {
			_, err := d.Decide(context.Background(), fmt.Sprint("warm-", i, "-", j), 1)
			require.NoError(t, err)
		}
	}
}
