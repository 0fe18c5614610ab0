package cache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// journalFixture is a miniredis server whose clock the test sets, so that entries become idle
// without waiting.
type journalFixture struct {
	m      *miniredis.Miniredis
	client *redis.Client
	now    time.Time
}

func newJournalFixture(t *testing.T) *journalFixture {
	t.Helper()
	m := miniredis.RunT(t)
	f := &journalFixture{m: m, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m.SetTime(f.now)
	f.client = redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { f.client.Close() })
	return f
}

// advance moves the server's clock, which XAUTOCLAIM's idle times follow.
func (f *journalFixture) advance(d time.Duration) {
	f.now = f.now.Add(d)
	f.m.SetTime(f.now)
}

func (f *journalFixture) journal(t *testing.T, consumer string) *Journal[string, int] {
	t.Helper()
	j, err := NewJournal(context.Background(), JournalOptions[string, int]{
		Client: f.client, Consumer: consumer, ClaimIdle: time.Minute,
	})
	require.NoError(t, err)
	return j
}

func (f *journalFixture) pending(t *testing.T) int64 {
	t.Helper()
	p, err := f.client.XPending(context.Background(), "girder:writebehind", "girder").Result()
	require.NoError(t, err)
	return p.Count
}

func (f *journalFixture) length(t *testing.T) int64 {
	t.Helper()
	n, err := f.client.XLen(context.Background(), "girder:writebehind").Result()
	require.NoError(t, err)
	return n
}

func TestJournalWritesAreDurableThenAcknowledged(t *testing.T) {
	f := newJournalFixture(t)
	s := newWBStore()
	s.gate = make(chan struct{})
	wb := newTestWB(t, WriteBehindOptions[string, int]{Store: wbBatchStore{s}, Delay: -1, Journal: f.journal(t, "a")})
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

func TestJournalRecoversCrashedInstance(t *testing.T) {
	f := newJournalFixture(t)
	ctx := context.Background()
	crashed, err := NewWriteBehind(WriteBehindOptions[string, int]{Store: newWBStore(), Delay: time.Hour, Journal: f.journal(t, "crashed")})
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
	rescuer := newTestWB(t, WriteBehindOptions[string, int]{Store: s, Delay: -1, Journal: f.journal(t, "rescuer")})
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
	first, err := NewWriteBehind(WriteBehindOptions[string, int]{Store: newWBStore(), Delay: time.Hour, Journal: f.journal(t, "pod-0")})
	require.NoError(t, err)
	require.NoError(t, first.Write(ctx, "a", 1))
	first.halt()

	s := newWBStore()
	restarted := newTestWB(t, WriteBehindOptions[string, int]{Store: s, Delay: -1, Journal: f.journal(t, "pod-0")})
	require.NoError(t, restarted.Flush(ctx), "Flush covers what the start-up recovery queued")
	data, _ := s.snapshot()
	assert.Equal(t, map[string]int{"a": 1}, data, "no ClaimIdle wait for the same consumer name")
}

func TestJournalRecoveryNeverRollsBack(t *testing.T) {
	f := newJournalFixture(t)
	ctx := context.Background()
	crashed, err := NewWriteBehind(WriteBehindOptions[string, int]{Store: newWBStore(), Delay: time.Hour, Journal: f.journal(t, "crashed")})
	require.NoError(t, err)
	require.NoError(t, crashed.Write(ctx, "a", 1))
	require.NoError(t, crashed.Write(ctx, "b", 1))
	crashed.halt()

	s := newWBStore()
	live := newTestWB(t, WriteBehindOptions[string, int]{Store: s, Delay: -1, Journal: f.journal(t, "live")})
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
	s.fail = func(Write[string, int]) error { return errors.New("down") }
	slow := newTestWB(t, WriteBehindOptions[string, int]{
		Store: s, Delay: -1, Retries: 1000, Backoff: Backoff{Initial: time.Hour}, Journal: f.journal(t, "slow"),
	})
	require.NoError(t, slow.Write(ctx, "a", 1)) // retrying, for an hour
	other := newTestWB(t, WriteBehindOptions[string, int]{Store: newWBStore(), Delay: -1, Journal: f.journal(t, "other")})

	f.advance(40 * time.Second)
	slow.recoverOnce(ctx, false) // keepalive: idle 40 s ≥ ClaimIdle/3
	f.advance(40 * time.Second)  // 80 s since delivery, 40 s since keepalive
	assert.Equal(t, 0, other.recoverOnce(ctx, false), "a live instance's writes are not taken")
	assert.Equal(t, int64(1), f.pending(t))

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	var unwritten *UnwrittenError[string, int]
	require.ErrorAs(t, slow.Close(short), &unwritten)
	assert.Equal(t, []Write[string, int]{{Key: "a", Value: 1}}, unwritten.Writes)
	assert.Equal(t, int64(1), f.pending(t), "left in the journal for another instance")
}

func TestJournalDeadLetterIsAcknowledged(t *testing.T) {
	f := newJournalFixture(t)
	ctx := context.Background()
	s := newWBStore()
	s.fail = func(Write[string, int]) error { return errors.New("rejected") }
	var dead []FailedWrite[string, int]
	wb := newTestWB(t, WriteBehindOptions[string, int]{
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
	wb := newTestWB(t, WriteBehindOptions[string, int]{Store: s, Delay: -1, Journal: f.journal(t, "a")})
	// An entry appended by something else than a WriteBehind sits undelivered.
	require.NoError(t, f.client.XAdd(ctx, &redis.XAddArgs{Stream: "girder:writebehind", Values: []any{"k", `"ext"`, "v", "5"}}).Err())
	require.NoError(t, wb.Write(ctx, "a", 1))
	require.NoError(t, wb.Flush(ctx))
	data, _ := s.snapshot()
	assert.Equal(t, map[string]int{"a": 1, "ext": 5}, data)
	assert.Equal(t, int64(0), f.pending(t))
}

type failingCodec struct{}

func (failingCodec) Marshal(int) ([]byte, error)   { return nil, errors.New("cannot encode") }
func (failingCodec) Unmarshal([]byte) (int, error) { return 0, errors.New("cannot decode") }

func TestJournalErrors(t *testing.T) {
	ctx := context.Background()
	f := newJournalFixture(t)

	_, err := NewJournal(ctx, JournalOptions[string, int]{ClaimIdle: -1})
	assert.ErrorContains(t, err, "Client is nil")
	assert.ErrorContains(t, err, "ClaimIdle -1ns is negative")

	j, err := NewJournal(ctx, JournalOptions[string, int]{Client: f.client, ValueCodec: failingCodec{}})
	require.NoError(t, err)
	assert.NotEmpty(t, j.Consumer())
	wb := newTestWB(t, WriteBehindOptions[string, int]{Store: newWBStore(), Journal: j})
	assert.ErrorContains(t, wb.Write(ctx, "a", 1), "cannot encode")
	assert.Equal(t, 0, wb.Len(), "nothing queued when the append cannot be made")
	_, err = NewWriteBehind(WriteBehindOptions[string, int]{Store: newWBStore(), Journal: j})
	assert.ErrorContains(t, err, "already used")

	// Without Redis a write cannot be made durable, so it is refused.
	gone := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	defer gone.Close()
	j2 := &Journal[string, int]{client: gone, stream: "s", group: "g", consumer: "c", keys: JSON[string]{}, values: JSON[int]{}, claimIdle: time.Minute}
	wb2 := newTestWB(t, WriteBehindOptions[string, int]{Store: newWBStore(), Journal: j2})
	assert.ErrorContains(t, wb2.Write(ctx, "a", 1), "cache: journal: append")
	assert.Equal(t, 0, wb2.Len())
}

func TestJournalIDLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"1-0", "2-0", true},
		{"2-0", "10-0", true},
		{"5-2", "5-10", true},
		{"5-10", "5-2", false},
		{"7-1", "7-1", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, journalIDLess(tt.a, tt.b), "%s < %s", tt.a, tt.b)
	}
}

func BenchmarkWriteBehindJournalWrite(b *testing.B) {
	m := miniredis.RunT(b)
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer client.Close()
	j, err := NewJournal(context.Background(), JournalOptions[string, int]{Client: client})
	require.NoError(b, err)
	wb, err := NewWriteBehind(WriteBehindOptions[string, int]{Store: wbBatchStore{newWBStore()}, Delay: time.Millisecond, Journal: j})
	require.NoError(b, err)
	defer wb.Close(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		wb.Write(ctx, "k", i)
		i++
	}
}
