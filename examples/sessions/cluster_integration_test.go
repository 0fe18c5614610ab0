package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/girder-go/girder/internal/testenv"
)

// TestIntegrationCluster runs the service in cluster mode on a real Redis Cluster (three
// masters, one replica each, in containers), started once for its subtests: sessions are
// created, read and deleted over HTTP, and survive a CLUSTER FAILOVER of the master that holds
// them, with reads going on throughout.
func TestIntegrationCluster(t *testing.T) {
	rc := testenv.StartRedisCluster(t)
	h := start(t, config{clusterOpts: rc.Options(), opTimeout: 2 * time.Second, loginRate: -1})
	addr := func(n *testenv.Redis) string { return n.Alias() + ":6379" } // as the cluster announces it

	t.Run("endpoints", func(t *testing.T) {
		h.t = t
		r := h.login("alice")
		master := rc.MasterFor(t, sessionKey(r.ID))
		require.Equal(t, []string{addr(master)}, r.StoredOn, "the master of the key's slot took the write")

		code, me := h.me(r.ID)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "alice", me.User)
		require.Equal(t, addr(master), me.ServedBy)
		require.Equal(t, addr(master), me.Replicas[0], "the slot's master first")
		// Then its replica, once it has replicated something: CLUSTER SLOTS leaves out a replica
		// whose replication offset is still 0, as on a cluster that has seen no write yet.
		replica := addr(rc.ReplicaOf(t, master))
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			code, me := h.me(r.ID)
			require.Equal(c, http.StatusOK, code)
			require.Equal(c, []string{addr(master), replica}, me.Replicas)
		}, wait, 20*time.Millisecond)

		// The key is on that master; the other masters send the client there.
		for _, m := range rc.Masters(t) {
			n, err := rc.NodeClient(t, m).Exists(t.Context(), sessionKey(r.ID)).Result()
			if m == master {
				require.NoError(t, err)
				require.EqualValues(t, 1, n)
				continue
			}
			require.ErrorContains(t, err, fmt.Sprintf("MOVED %d %s", keySlot(sessionKey(r.ID)), addr(master)), m.Alias())
		}

		// The admin view is the cluster's: three masters, every slot, a replica each, and the
		// session's key on its master and, once replicated, its replica.
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			var v clusterView
			require.Equal(c, http.StatusOK, h.do(http.MethodGet, "/admin/nodes", nil, "", &v).StatusCode)
			require.Equal(c, "cluster", v.Mode)
			require.Len(c, v.Shards, 3)
			slots, keys := 0, int64(0)
			for _, s := range v.Shards {
				require.Len(c, s.Replicas, 1)
				for _, rg := range s.Slots {
					var lo, hi int
					_, err := fmt.Sscanf(rg, "%d-%d", &lo, &hi)
					require.NoError(c, err)
					slots += hi - lo + 1
				}
				for _, n := range append([]clusterNodeView{s.Master}, s.Replicas...) {
					require.NotNil(c, n.Keys, "%s: %s", n.Addr, n.Error)
					keys += *n.Keys
				}
			}
			require.Equal(c, 16384, slots)
			require.EqualValues(c, 2, keys, "one key, on a master and its replica")
		}, wait, 20*time.Millisecond)

		var out map[string]bool
		require.Equal(t, http.StatusOK, h.do(http.MethodPost, "/logout", nil, r.ID, &out).StatusCode)
		require.True(t, out["logged_out"])
		code, _ = h.me(r.ID)
		require.Equal(t, http.StatusUnauthorized, code)
		h.do(http.MethodPost, "/logout", nil, r.ID, &out)
		require.False(t, out["logged_out"])

		require.Equal(t, http.StatusNotImplemented, h.do(http.MethodPost, "/admin/nodes/redis-c0/kill", nil, "", nil).StatusCode)
		require.Equal(t, http.StatusBadRequest, h.do(http.MethodPost, "/login", url.Values{}, "", nil).StatusCode)
	})

	t.Run("failover", func(t *testing.T) {
		h.t = t
		const sessions = 60
		ids := make([]string, sessions)
		for i := range ids {
			ids[i] = h.login(fmt.Sprintf("user-%d", i)).ID
		}
		victim := ids[0]
		master := rc.MasterFor(t, sessionKey(victim))
		replica := rc.ReplicaOf(t, master)
		var onMaster []string // the sessions whose slots move with the failover
		for _, id := range ids {
			_, me := h.me(id)
			if me.ServedBy == addr(master) {
				onMaster = append(onMaster, id)
			}
		}
		t.Logf("%d of %d sessions on %s, failing over to %s", len(onMaster), sessions, master.Alias(), replica.Alias())
		// Wait until the replica has every key of its master: CLUSTER FAILOVER waits for the
		// replica to catch up anyway, but a write not yet replicated is not what this tests.
		rep := rc.NodeClient(t, replica)
		require.Eventually(t, func() bool {
			n, err := rep.DBSize(t.Context()).Result()
			return err == nil && n == int64(len(onMaster))
		}, wait, 20*time.Millisecond)

		// Readers go on throughout the failover, each over its own connections, on the sessions
		// of the master that fails over; every answer is counted.
		var (
			stop            atomic.Bool
			wg              sync.WaitGroup
			mu              sync.Mutex
			reads           int
			failed          = map[int]int{}
			slowest         time.Duration
			transportErrors int
		)
		client := &http.Client{Transport: &http.Transport{}, Timeout: wait}
		defer client.CloseIdleConnections()
		for r := range 4 {
			wg.Go(func() {
				for i := r; !stop.Load(); i++ {
					id := onMaster[i%len(onMaster)]
					req, _ := http.NewRequest(http.MethodGet, h.base+"/me", nil)
					req.Header.Set("Authorization", "Bearer "+id)
					began := time.Now()
					resp, err := client.Do(req)
					took := time.Since(began)
					mu.Lock()
					reads++
					slowest = max(slowest, took)
					switch {
					case err != nil:
						transportErrors++
					case resp.StatusCode != http.StatusOK:
						failed[resp.StatusCode]++
					}
					mu.Unlock()
					if err == nil {
						resp.Body.Close()
					}
				}
			})
		}
		time.Sleep(200 * time.Millisecond) // reads before the failover, too
		began := time.Now()
		newMaster := rc.Failover(t, master)
		took := time.Since(began)
		time.Sleep(1500 * time.Millisecond) // past a slot map reload (clusterReload)
		stop.Store(true)
		wg.Wait()
		mu.Lock()
		t.Logf("CLUSTER FAILOVER %s -> %s took %v (until the cluster is healthy); %d reads during it and 1.7 s around it: %d transport errors, non-200 answers %v, slowest %v",
			master.Alias(), newMaster.Alias(), took.Round(time.Millisecond), reads, transportErrors, failed, slowest.Round(time.Millisecond))
		require.Zero(t, transportErrors)
		require.Empty(t, failed, "every read during the failover answered 200")
		mu.Unlock()
		require.Equal(t, replica, newMaster)

		// Every session is readable; those of the failed-over master are now served by its
		// former replica, which lists the old master as its replica.
		for _, id := range ids {
			code, me := h.me(id)
			require.Equal(t, http.StatusOK, code)
			if slices.Contains(onMaster, id) {
				require.Equal(t, addr(newMaster), me.ServedBy)
				require.Equal(t, []string{addr(newMaster), addr(master)}, me.Replicas)
			}
		}
		// Writes go to the new master: a logout there holds, a new session lands there if its
		// slot is one of the moved ones.
		var out map[string]bool
		require.Equal(t, http.StatusOK, h.do(http.MethodPost, "/logout", nil, victim, &out).StatusCode)
		require.True(t, out["logged_out"])
		code, _ := h.me(victim)
		require.Equal(t, http.StatusUnauthorized, code)
		for i := range 20 {
			r := h.login(fmt.Sprintf("after-%d", i))
			require.NotEqual(t, []string{addr(master)}, r.StoredOn, "a write went to the demoted master")
		}
	})
	h.t = t
	h.stop()
}
