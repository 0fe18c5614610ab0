package writebehind

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/girder-go/girder/internal/testenv"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestJournalRedis checks, on real Redis, that the journal applies every entry it holds and
// recovers from losing its stream or its consumer group.
func TestJournalRedis(t *testing.T) {
	testenv.Require(t)
	t.Parallel()
	srv := testenv.StartRedis(t)
	client := srv.Client(t)
	ctx := context.Background()
	const stream = "girder:writebehind"
	journal := func(t *testing.T, consumer string) *Journal[string, int] {
		t.Helper()
		j, err := NewJournal(ctx, JournalOptions[string, int]{
			Client: client, Consumer: consumer, ClaimIdle: 100 * time.Millisecond, Timeout: 2 * time.Second,
		})
		require.NoError(t, err)
		return j
	}

	// Entries that no consumer read (their writer died between appending and delivering them, or
	// something else appended them) are applied by the next instance, not trimmed away.
	t.Run("UndeliveredEntriesAreAppliedNotTrimmed", func(t *testing.T) {
		require.NoError(t, client.FlushAll(ctx).Err())
		_ = journal(t, "gone") // the group exists, as it did for the writer that is gone
		want := map[string]int{}
		for i := range 50 {
			k := fmt.Sprint("k", i)
			require.NoError(t, client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"k", fmt.Sprintf("%q", k), "v", fmt.Sprint(i)}}).Err())
			want[k] = i
		}
		s := newWBStore()
		wb := newTestWB(t, Options[string, int]{Store: s, Delay: time.Millisecond, Journal: journal(t, "next")})
		require.NoError(t, wb.Flush(ctx), "Flush covers what the start-up recovery queued")
		data, _ := s.snapshot()
		assert.Equal(t, want, data, "all 50 applied, none trimmed")
		require.NoError(t, wb.Close(ctx))
		p, err := client.XPending(ctx, stream, "girder").Result()
		require.NoError(t, err)
		assert.Zero(t, p.Count)
	})

	faults := []struct {
		name  string
		fault func(t *testing.T)
	}{
		{"DeletedStream", func(t *testing.T) { require.NoError(t, client.Del(ctx, stream).Err()) }},
		{"DestroyedGroup", func(t *testing.T) { require.NoError(t, client.XGroupDestroy(ctx, stream, "girder").Err()) }},
		{"FlushAll", func(t *testing.T) { require.NoError(t, client.FlushAll(ctx).Err()) }},
		{"RestartWithoutPersistence", func(t *testing.T) { srv.Stop(t); srv.Start(t) }},
	}
	for _, f := range faults {
		// Later Writes succeed; a Write that returned an error (not ErrJournalAmbiguous) is never
		// applied, by this instance or a later one.
		t.Run("LostStreamOrGroupIsRecreated/"+f.name, func(t *testing.T) {
			require.NoError(t, client.FlushAll(ctx).Err())
			s := newWBStore()
			wb := newTestWB(t, Options[string, int]{Store: s, Delay: time.Millisecond, Journal: journal(t, "one")})
			require.NoError(t, wb.Write(ctx, "before", 1))
			require.NoError(t, wb.Flush(ctx))
			f.fault(t)

			acked, failed := map[string]int{}, map[string]int{}
			deadline := time.Now().Add(20 * time.Second)
			for i := 0; len(acked) < 5; i++ {
				require.True(t, time.Now().Before(deadline), "Writes keep failing after %s: %d failed", f.name, len(failed))
				k := fmt.Sprint("after", i)
				err := wb.Write(ctx, k, i)
				switch {
				case err == nil:
					acked[k] = i
				case errors.Is(err, ErrJournalAmbiguous):
					t.Logf("ambiguous: %v", err)
				default:
					if len(failed) == 0 {
						t.Logf("failed: %v", err)
					}
					failed[k] = i
				}
			}
			assert.Empty(t, failed, "the journal recreates what is missing instead of refusing writes")
			require.NoError(t, wb.Flush(ctx))
			require.NoError(t, wb.Close(ctx))

			// A later instance applies whatever the journal still holds.
			later := newTestWB(t, Options[string, int]{Store: s, Delay: time.Millisecond, Journal: journal(t, "two")})
			time.Sleep(300 * time.Millisecond) // past ClaimIdle: anything pending is claimable
			later.recoverOnce(ctx, false)
			require.NoError(t, later.Flush(ctx))
			require.NoError(t, later.Close(ctx))
			data, _ := s.snapshot()
			for k, v := range acked {
				assert.Equal(t, v, data[k], "acknowledged %s applied", k)
			}
			for k := range failed {
				assert.NotContains(t, data, k, "a Write that failed is never applied")
			}
		})
	}

	// During an outage a Write returns within the journal's Timeout, never hangs.
	t.Run("WriteDuringPauseReturnsWithinTimeout", func(t *testing.T) {
		require.NoError(t, client.FlushAll(ctx).Err())
		wb := newTestWB(t, Options[string, int]{Store: newWBStore(), Delay: time.Millisecond, Journal: journal(t, "paused")})
		require.NoError(t, wb.Write(ctx, "a", 1))
		srv.Pause(t)
		begin := time.Now()
		err := wb.Write(ctx, "a", 2)
		took := time.Since(begin)
		srv.Unpause(t)
		require.Error(t, err)
		assert.Less(t, took, 3*time.Second, "Timeout is 2s")
		t.Logf("Write during a pause: %v after %v", err, took)
	})

	// With Replicas, an append no replica confirms is reported, and still applied.
	t.Run("ReplicasNotConfirmed", func(t *testing.T) {
		require.NoError(t, client.FlushAll(ctx).Err())
		j, err := NewJournal(ctx, JournalOptions[string, int]{Client: client, Consumer: "r", Replicas: 1, ReplicaTimeout: 50 * time.Millisecond})
		require.NoError(t, err)
		s := newWBStore()
		wb := newTestWB(t, Options[string, int]{Store: s, Delay: time.Millisecond, Journal: j})
		err = wb.Write(ctx, "a", 1)
		var re *JournalReplicaError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, JournalReplicaError{Want: 1, Got: 0}, *re)
		assert.ErrorIs(t, err, ErrJournalNotReplicated)
		require.NoError(t, wb.Flush(ctx))
		data, _ := s.snapshot()
		assert.Equal(t, map[string]int{"a": 1}, data, "written on the primary: applied")
	})

	t.Run("ReplicasConfirmed", func(t *testing.T) {
		nodes := testenv.StartRedisNodes(t, 2)
		primary, replica := nodes[0].Client(t), nodes[1].Client(t)
		require.NoError(t, primary.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err())
		require.NoError(t, replica.Do(ctx, "REPLICAOF", nodes[0].Alias(), "6379").Err())
		require.Eventually(t, func() bool {
			info, _ := primary.Info(ctx, "replication").Result()
			return strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
		}, 20*time.Second, 50*time.Millisecond)
		j, err := NewJournal(ctx, JournalOptions[string, int]{Client: primary, Consumer: "r", Replicas: 1})
		require.NoError(t, err)
		s := newWBStore()
		wb := newTestWB(t, Options[string, int]{Store: s, Delay: time.Millisecond, Journal: j})
		require.NoError(t, wb.Write(ctx, "a", 1))
		n, err := replica.XLen(ctx, stream).Result()
		require.NoError(t, err)
		assert.GreaterOrEqual(t, n, int64(1), "on the replica when Write returned")
		require.NoError(t, wb.Flush(ctx))
	})
}
