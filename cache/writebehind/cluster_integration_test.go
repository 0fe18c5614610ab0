package writebehind

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIntegrationCluster runs the journal on a real Redis Cluster (3 masters, 1 replica each),
// started once for the subtests: appends, applies and the recovery of a crashed instance's
// entries; entries nobody read; a lost stream or group; Replicas confirmed by the stream's
// master's replica; and a failover of the stream's master (CLUSTER FAILOVER; with GIRDER_SOAK
// also kills) under writers, with and without Replicas, counting the acknowledged writes a crash
// right after it would lose.
func TestIntegrationCluster(t *testing.T) {
	t.Parallel()
	rc := testenv.StartRedisCluster(t)
	ctx := context.Background()
	newClient := func(t *testing.T) *redis.ClusterClient { return rc.ClientTimeout(t, time.Second) }
	admin := newClient(t)
	journal := func(t *testing.T, stream, consumer string) *Journal[string, int] {
		t.Helper()
		j, err := NewJournal(ctx, JournalOptions[string, int]{
			Client: newClient(t), Stream: stream, Consumer: consumer, ClaimIdle: 300 * time.Millisecond, Timeout: 2 * time.Second,
		})
		require.NoError(t, err)
		return j
	}

	t.Run("a crashed instance's writes are applied by another", func(t *testing.T) {
		const stream = "wb:crash"
		db := newWBStore()
		crashing, err := New(Options[string, int]{Store: wbBatchStore{db}, Delay: 100 * time.Millisecond, Journal: journal(t, stream, "crashing")})
		require.NoError(t, err)
		const writers, keysPerWriter, total = 4, 30, 1500
		acked := make([]map[string]int, writers)
		tried := make([]map[string]int, writers)
		var n atomic.Int64
		var wg sync.WaitGroup
		for g := range writers {
			acked[g], tried[g] = map[string]int{}, map[string]int{}
			wg.Go(func() {
				for i := 1; n.Add(1) <= total; i++ {
					k := fmt.Sprintf("w%d-%d", g, i)
					tried[g][k] = i
					if crashing.Write(ctx, k, i) != nil {
						return
					}
					acked[g][k] = i
				}
			})
		}
		wg.Wait()
		crashing.halt() // the crash: no drain, no acknowledgement
		p, err := admin.XPending(ctx, stream, "girder").Result()
		require.NoError(t, err)
		t.Logf("crashed after %d writes, %d entries pending in the journal", total, p.Count)

		rescuer := newTestWB(t, Options[string, int]{Store: wbBatchStore{db}, Delay: time.Millisecond, Journal: journal(t, stream, "rescuer")})
		require.Eventually(t, func() bool {
			data, _ := db.snapshot()
			for g := range writers {
				for k, v := range acked[g] {
					if data[k] < v || data[k] > tried[g][k] {
						return false
					}
				}
			}
			return true
		}, 30*time.Second, 50*time.Millisecond, "the rescuer claims the crashed instance's entries and applies them")
		require.NoError(t, rescuer.Close(ctx))
		p, err = admin.XPending(ctx, stream, "girder").Result()
		require.NoError(t, err)
		assert.Zero(t, p.Count, "every entry acknowledged")
	})

	t.Run("entries nobody read are applied", func(t *testing.T) {
		const stream = "wb:unread"
		_ = journal(t, stream, "gone") // the group exists, as it did for the writer that is gone
		want := map[string]int{}
		for i := range 50 {
			k := fmt.Sprint("k", i)
			require.NoError(t, admin.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"k", fmt.Sprintf("%q", k), "v", fmt.Sprint(i)}}).Err())
			want[k] = i
		}
		s := newWBStore()
		wb := newTestWB(t, Options[string, int]{Store: s, Delay: time.Millisecond, Journal: journal(t, stream, "next")})
		require.NoError(t, wb.Flush(ctx))
		data, _ := s.snapshot()
		assert.Equal(t, want, data)
		require.NoError(t, wb.Close(ctx))
	})

	for _, f := range []struct {
		name  string
		fault func(t *testing.T, stream string)
	}{
		{"deleted stream", func(t *testing.T, stream string) { require.NoError(t, admin.Del(ctx, stream).Err()) }},
		{"destroyed group", func(t *testing.T, stream string) {
			require.NoError(t, admin.XGroupDestroy(ctx, stream, "girder").Err())
		}},
	} {
		t.Run("lost stream or group is recreated/"+f.name, func(t *testing.T) {
			stream := "wb:lost:" + f.name
			s := newWBStore()
			wb := newTestWB(t, Options[string, int]{Store: s, Delay: time.Millisecond, Journal: journal(t, stream, "one")})
			require.NoError(t, wb.Write(ctx, "before", 1))
			require.NoError(t, wb.Flush(ctx))
			f.fault(t, stream)
			for i := range 5 {
				require.NoError(t, wb.Write(ctx, fmt.Sprint("after", i), i), "the journal creates what is missing and goes on")
			}
			require.NoError(t, wb.Flush(ctx))
			data, _ := s.snapshot()
			assert.Equal(t, map[string]int{"before": 1, "after0": 0, "after1": 1, "after2": 2, "after3": 3, "after4": 4}, data)
			n, err := admin.XLen(ctx, stream).Result()
			require.NoError(t, err)
			assert.Positive(t, n, "the stream exists again")
		})
	}

	t.Run("replicas confirm", func(t *testing.T) {
		const stream = "wb:replicas"
		j, err := NewJournal(ctx, JournalOptions[string, int]{Client: newClient(t), Stream: stream, Consumer: "r", Replicas: 1})
		require.NoError(t, err)
		s := newWBStore()
		wb := newTestWB(t, Options[string, int]{Store: s, Delay: time.Millisecond, Journal: j})
		require.NoError(t, wb.Write(ctx, "a", 1), "the stream's master has one replica")
		// Read the replica itself (READONLY, on one connection).
		replica := rc.NodeClient(t, rc.ReplicaOf(t, rc.MasterFor(t, stream)))
		conn := replica.Conn()
		defer conn.Close()
		require.NoError(t, conn.ReadOnly(ctx).Err())
		n, err := conn.XLen(ctx, stream).Result()
		require.NoError(t, err)
		assert.GreaterOrEqual(t, n, int64(1), "on the replica when Write returned")
		require.NoError(t, wb.Flush(ctx))

		j2, err := NewJournal(ctx, JournalOptions[string, int]{Client: newClient(t), Stream: stream + ":2", Consumer: "r", Replicas: 2, ReplicaTimeout: 50 * time.Millisecond})
		require.NoError(t, err)
		wb2 := newTestWB(t, Options[string, int]{Store: s, Delay: time.Millisecond, Journal: j2})
		var re *JournalReplicaError
		require.ErrorAs(t, wb2.Write(ctx, "b", 1), &re, "a master has only one replica")
		assert.Equal(t, JournalReplicaError{Want: 2, Got: 1}, *re)
	})

	t.Run("failover", func(t *testing.T) {
		_, rng := testenv.Seed(t)
		soak := testenv.Soak(t, 0)
		deadline := time.Now().Add(soak)
		for {
			tag := fmt.Sprint("{fo-", rng.IntN(1_000_000), "}")
			failJournal(t, rc, newClient, "CLUSTER FAILOVER", tag, func(t *testing.T, m *testenv.Redis) { rc.Failover(t, m) })
			if soak == 0 {
				break
			}
			// The killed master comes back (as a replica) within the fault: until then the promoted
			// replica has no replica of its own, and a journal with Replicas cannot be confirmed.
			tag = fmt.Sprint("{fo-", rng.IntN(1_000_000), "}")
			failJournal(t, rc, newClient, "master killed and restarted", tag, func(t *testing.T, m *testenv.Redis) {
				start := time.Now()
				rc.Kill(t, m)
				t.Logf("%s killed: its replica took over after %v", m.Alias(), time.Since(start).Round(time.Millisecond))
				rc.Restart(t, m)
			})
			if time.Now().After(deadline) {
				break
			}
		}
	})
}

// failJournal fails over the master of two journals' streams (one slot, by the hash tag) while
// writers append to both: one journal waits for a replica (Replicas 1), the other does not. Each
// write has a key of its own, and the queues never flush (Delay of an hour), so every write lives
// in its journal only; once every writer's Write succeeds again, the instances crash, a rescuer of
// each journal applies what the journal holds, and an acknowledged write it does not apply is
// lost. With Replicas it must be none.
func failJournal(t *testing.T, rc *testenv.RedisCluster, newClient func(*testing.T) *redis.ClusterClient, name, tag string,
	fault func(*testing.T, *testenv.Redis)) {
	ctx := context.Background()
	const writers = 3
	type run struct {
		label  string
		stream string
		wb     *Queue[string, int]
		store  *wbStore
		acked  []map[string]int
		tried  []map[string]int
		probes []*testenv.Probe
		notRep atomic.Int64 // *JournalReplicaError
		ambig  atomic.Int64 // ErrJournalAmbiguous
	}
	var runs []*run
	for _, replicas := range []int{1, 0} {
		r := &run{label: "default", stream: "wb:" + tag + ":default", store: newWBStore()}
		opts := JournalOptions[string, int]{Client: newClient(t), Stream: r.stream, Consumer: "writer",
			ClaimIdle: 300 * time.Millisecond, Timeout: 2 * time.Second}
		if replicas > 0 {
			r.label, r.stream = "Replicas 1", "wb:"+tag+":wait"
			opts.Stream, opts.Replicas, opts.ReplicaTimeout = r.stream, replicas, 500*time.Millisecond
		}
		j, err := NewJournal(ctx, opts)
		require.NoError(t, err)
		r.wb, err = New(Options[string, int]{Store: r.store, Delay: time.Hour, BatchSize: 1000, QueueSize: 1_000_000, Journal: j})
		require.NoError(t, err)
		for g := range writers {
			acked, tried := map[string]int{}, map[string]int{}
			r.acked, r.tried = append(r.acked, acked), append(r.tried, tried)
			i := 0
			r.probes = append(r.probes, testenv.StartProbe(fmt.Sprintf("%s, journal %s, writer %d", name, r.label, g), 2*time.Millisecond,
				func(ctx context.Context) error {
					i++
					k := fmt.Sprintf("w%d-%d", g, i)
					tried[k] = i
					err := r.wb.Write(ctx, k, i)
					var re *JournalReplicaError
					switch {
					case err == nil:
						acked[k] = i
					case ctx.Err() != nil: // Stop cancelled it; the probe does not count it either
					case errors.As(err, &re):
						r.notRep.Add(1)
					case errors.Is(err, ErrJournalAmbiguous):
						r.ambig.Add(1)
					}
					return err
				}))
		}
		runs = append(runs, r)
	}

	time.Sleep(300 * time.Millisecond)
	for _, r := range runs {
		for _, p := range r.probes {
			p.Mark()
		}
	}
	master := rc.MasterFor(t, runs[0].stream)
	start := time.Now()
	fault(t, master)
	t.Logf("%s of %s: the cluster was healthy again after %v", name, master.Alias(), time.Since(start).Round(time.Millisecond))
	var n atomic.Int64
	var why atomic.Value
	if !assert.Eventually(t, func() bool {
		for _, r := range runs {
			if err := r.wb.Write(ctx, fmt.Sprint("check-", n.Add(1)), 0); err != nil {
				why.Store(r.label + ": " + err.Error())
				return false
			}
		}
		return true
	}, 60*time.Second, 10*time.Millisecond) {
		t.Fatalf("%s: writes fail still: %v", name, why.Load())
	}
	t.Logf("%s: both journals took writes again %v after the fault began", name, time.Since(start).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)

	for _, r := range runs {
		var total, acks int
		for _, p := range r.probes {
			t.Log(p.Stop())
		}
		for g := range writers {
			total += len(r.tried[g])
			acks += len(r.acked[g])
		}
		r.wb.halt() // the crash, right after the failover
		j, err := NewJournal(ctx, JournalOptions[string, int]{Client: newClient(t), Stream: r.stream, Consumer: "rescuer", ClaimIdle: 300 * time.Millisecond})
		require.NoError(t, err)
		rescuer := newTestWB(t, Options[string, int]{Store: r.store, Delay: time.Millisecond, Journal: j})
		time.Sleep(400 * time.Millisecond) // past ClaimIdle
		for range 10 {
			if rescuer.recoverOnce(ctx, false) == 0 {
				break
			}
		}
		require.NoError(t, rescuer.Flush(ctx))
		data, _ := r.store.snapshot()
		lost, foreign := 0, 0
		for g := range writers {
			for k, v := range r.acked[g] {
				if got, ok := data[k]; !ok || got != v {
					lost++
				}
			}
		}
		for k, v := range data {
			var g, i int
			if _, err := fmt.Sscanf(k, "w%d-%d", &g, &i); err == nil && (g >= writers || r.tried[g][k] != v) {
				foreign++
			}
		}
		t.Logf("%s, journal %s: %d Writes, %d acknowledged (%d not confirmed on a replica, %d ambiguous); %d acknowledged writes lost by a crash right after the failover",
			name, r.label, total, acks, r.notRep.Load(), r.ambig.Load(), lost)
		assert.Zero(t, foreign, "a key holds a value never written")
		if r.label != "default" {
			assert.Zero(t, lost, "%s: acknowledged writes confirmed by a replica are never lost", r.label)
		}
	}
}
