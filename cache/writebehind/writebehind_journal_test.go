package writebehind

import (
	"context"
	"errors"
	"testing"

	"github.com/girder-go/girder/cache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJournalWritesAreDurableThenAcknowledged(t *testing.T) {
	f := newJournalFixture(t)
	s := newWBStore()
	s.gate = make(chan struct{})
	wb := newTestWB(t, Options[string, int]{Store: wbBatchStore{s}, Delay: -1, Journal: f.journal(t, "a")})
	ctx := context.Background()
	require.NoError(t, wb.Write(ctx, "x", 1))
	require.NoError(t, wb.Write(ctx, "y", 2))
	require.NoError(t, wb.Delete(ctx, "z"))
	assert.Equal(t, int64(3), f.length(t), "appended before Write returned")
	assert.Equal(t, int64(3), f.pending(t), "and delivered to this consumer at once")

	close(s.gate)
	require.NoError(t, wb.Flush(ctx))
	data, _ := s.snapshot()
	assert.Equal(t, map[string]int{"x": 1, "y": 2}, data)
	assert.Equal(t, int64(0), f.pending(t), "acknowledged after the store took them")
	wb.recoverOnce(ctx, false)
	assert.LessOrEqual(t, f.length(t), int64(1), "acknowledged entries are trimmed")
}

func TestJournalDeadLetterIsAcknowledged(t *testing.T) {
	f := newJournalFixture(t)
	ctx := context.Background()
	s := newWBStore()
	s.fail = func(cache.Write[string, int]) error { return errors.New("rejected") }
	var dead []FailedWrite[string, int]
	wb := newTestWB(t, Options[string, int]{
		Store: s, Delay: -1, Retries: -1, Journal: f.journal(t, "a"),
		DeadLetter: func(fw []FailedWrite[string, int]) { dead = append(dead, fw...) },
	})
	require.NoError(t, wb.Write(ctx, "a", 1))
	require.NoError(t, wb.Flush(ctx))
	require.Len(t, dead, 1)
	assert.Equal(t, int64(0), f.pending(t), "the dead-letter hook owns it now")
}

func TestJournalAdoptsForeignEntries(t *testing.T) {
	f := newJournalFixture(t)
	ctx := context.Background()
	s := newWBStore()
	wb := newTestWB(t, Options[string, int]{Store: s, Delay: -1, Journal: f.journal(t, "a")})
	// An entry appended by something else than a Queue sits undelivered.
	require.NoError(t, f.client.XAdd(ctx, &redis.XAddArgs{Stream: "girder:writebehind", Values: []any{"k", `"ext"`, "v", "5"}}).Err())
	require.NoError(t, wb.Write(ctx, "a", 1))
	require.NoError(t, wb.Flush(ctx))
	data, _ := s.snapshot()
	assert.Equal(t, map[string]int{"a": 1, "ext": 5}, data)
	assert.Equal(t, int64(0), f.pending(t))
}
