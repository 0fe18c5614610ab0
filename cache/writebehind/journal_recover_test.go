package writebehind

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJournalRecoversCrashedInstance(t *testing.T) {
	f := newJournalFixture(t)
	ctx := context.Background()
	crashed, err := New(Options[string, int]{Store: newWBStore(), Delay: time.Hour, Journal: f.journal(t, "crashed")})
	require.NoError(t, err)
	want := map[string]int{}
	for i := range 50 {
		k := fmt.Sprint("k", i%20)
		require.NoError(t, crashed.Write(ctx, k, i))
		want[k] = i
	}
	require.NoError(t, crashed.Delete(ctx, "k3"))
	delete(want, "k3")
	crashed.halt()

	s := newWBStore()
	rescuer := newTestWB(t, Options[string, int]{Store: s, Delay: -1, Journal: f.journal(t, "rescuer")})
	require.NoError(t, rescuer.Flush(ctx))
	assert.Equal(t, 0, rescuer.recoverOnce(ctx, false), "entries are not idle yet: the owner may be alive")

	f.advance(2 * time.Minute)
	assert.Equal(t, 20, rescuer.recoverOnce(ctx, false), "the latest write of each of the 20 keys")
	require.NoError(t, rescuer.Flush(ctx))
	data, _ := s.snapshot()
	assert.Equal(t, want, data)
	assert.Equal(t, int64(0), f.pending(t), "superseded entries are acknowledged too")
}

func TestJournalRestartTakesOwnEntriesBack(t *testing.T) {
	f := newJournalFixture(t)
	ctx := context.Background()
	first, err := New(Options[string, int]{Store: newWBStore(), Delay: time.Hour, Journal: f.journal(t, "pod-0")})
	require.NoError(t, err)
	require.NoError(t, first.Write(ctx, "a", 1))
	first.halt()

	s := newWBStore()
	restarted := newTestWB(t, Options[string, int]{Store: s, Delay: -1, Journal: f.journal(t, "pod-0")})
	require.NoError(t, restarted.Flush(ctx), "Flush covers what the start-up recovery queued")
	data, _ := s.snapshot()
	assert.Equal(t, map[string]int{"a": 1}, data, "no ClaimIdle wait for the same consumer name")
}

func TestJournalRecoveryNeverRollsBack(t *testing.T) {
	f := newJournalFixture(t)
	ctx := context.Background()
	crashed, err := New(Options[string, int]{Store: newWBStore(), Delay: time.Hour, Journal: f.journal(t, "crashed")})
	require.NoError(t, err)
	require.NoError(t, crashed.Write(ctx, "a", 1))
	require.NoError(t, crashed.Write(ctx, "b", 1))
	crashed.halt()

	s := newWBStore()
	live := newTestWB(t, Options[string, int]{Store: s, Delay: -1, Journal: f.journal(t, "live")})
	require.NoError(t, live.Write(ctx, "a", 2)) // after the crash
	require.NoError(t, live.Flush(ctx))
	f.advance(2 * time.Minute)
	assert.Equal(t, 1, live.recoverOnce(ctx, false), "only b: a has a newer write")
	require.NoError(t, live.Flush(ctx))
	data, _ := s.snapshot()
	assert.Equal(t, map[string]int{"a": 2, "b": 1}, data)
	assert.Equal(t, int64(0), f.pending(t))
}

func TestJournalKeepaliveProtectsLiveInstance(t *testing.T) {
	f := newJournalFixture(t)
	ctx := context.Background()
	s := newWBStore()
	s.fail = func(cache.Write[string, int]) error { return errors.New("down") }
	slow := newTestWB(t, Options[string, int]{
		Store: s, Delay: -1, Retries: 1000, Backoff: Backoff{Initial: time.Hour}, Journal: f.journal(t, "slow"),
	})
	require.NoError(t, slow.Write(ctx, "a", 1)) // retrying, for an hour
	other := newTestWB(t, Options[string, int]{Store: newWBStore(), Delay: -1, Journal: f.journal(t, "other")})

	f.advance(40 * time.Second)
	slow.recoverOnce(ctx, false) // keepalive: idle 40 s ≥ ClaimIdle/3
	f.advance(40 * time.Second)  // 80 s since delivery, 40 s since keepalive
	assert.Equal(t, 0, other.recoverOnce(ctx, false), "a live instance's writes are not taken")
	assert.Equal(t, int64(1), f.pending(t))

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	var unwritten *UnwrittenError[string, int]
	require.ErrorAs(t, slow.Close(short), &unwritten)
	assert.Equal(t, []cache.Write[string, int]{{Key: "a", Value: 1}}, unwritten.Writes)
	assert.Equal(t, int64(1), f.pending(t), "left in the journal for another instance")
}

// An append whose reply was lost (ErrJournalAmbiguous) may still have taken effect: its entry sits
// in this consumer's pending list, unknown to the instance. The next recovery round applies it.
func TestJournalOrphanOfAmbiguousAppendIsApplied(t *testing.T) {
	f := newJournalFixture(t)
	ctx := context.Background()
	s := newWBStore()
	wb := newTestWB(t, Options[string, int]{Store: s, Delay: -1, Journal: f.journal(t, "a")})
	require.NoError(t, wb.Write(ctx, "known", 1))
	// What the lost append did: the entry appended and delivered to "a".
	require.NoError(t, f.client.XAdd(ctx, &redis.XAddArgs{Stream: "girder:writebehind", Values: []any{"k", `"orphan"`, "v", "7"}}).Err())
	require.NoError(t, f.client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "girder", Consumer: "a", Streams: []string{"girder:writebehind", ">"}}).Err())
	wb.orphans.Store(true) // as the appender does on an ambiguous error
	assert.Equal(t, 1, wb.recoverOnce(ctx, false), "only the orphan: the known write is queued already")
	require.NoError(t, wb.Flush(ctx))
	data, _ := s.snapshot()
	assert.Equal(t, map[string]int{"known": 1, "orphan": 7}, data)
	assert.Equal(t, int64(0), f.pending(t))
}
