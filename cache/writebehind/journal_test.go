package writebehind

import (
	"context"
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/cache"
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

type failingCodec struct{}

func (failingCodec) Marshal(int) ([]byte, error)   { return nil, errors.New("cannot encode") }
func (failingCodec) Unmarshal([]byte) (int, error) { return 0, errors.New("cannot decode") }

func TestJournalErrors(t *testing.T) {
	ctx := context.Background()
	f := newJournalFixture(t)

	_, err := NewJournal(ctx, JournalOptions[string, int]{ClaimIdle: -1})
	assert.ErrorContains(t, err, "Client is nil")
	assert.ErrorContains(t, err, "ClaimIdle -1ns is negative")
	for _, tt := range []struct {
		opts JournalOptions[string, int]
		want string
	}{
		{JournalOptions[string, int]{Client: f.client, Timeout: -1}, "Timeout -1ns is negative"},
		{JournalOptions[string, int]{Client: f.client, Replicas: -1}, "Replicas -1 is negative"},
		{JournalOptions[string, int]{Client: f.client, Replicas: 1, ReplicaTimeout: -1}, "ReplicaTimeout -1ns is negative"},
		{JournalOptions[string, int]{Client: f.client, ReplicaTimeout: time.Second}, "ReplicaTimeout 1s is set but Replicas is 0"},
		{JournalOptions[string, int]{Client: f.client, Replicas: 1, Timeout: time.Second}, "ReplicaTimeout 1s is not below Timeout 1s"},
	} {
		_, err := NewJournal(ctx, tt.opts)
		assert.ErrorContains(t, err, tt.want)
		assert.ErrorContains(t, err, "writebehind: JournalOptions.")
	}
	assert.NoError(t, (&JournalOptions[string, int]{Client: f.client, Replicas: 2, ReplicaTimeout: 100 * time.Millisecond}).Validate())

	j, err := NewJournal(ctx, JournalOptions[string, int]{Client: f.client, ValueCodec: failingCodec{}})
	require.NoError(t, err)
	assert.NotEmpty(t, j.Consumer())
	wb := newTestWB(t, Options[string, int]{Store: newWBStore(), Journal: j})
	assert.ErrorContains(t, wb.Write(ctx, "a", 1), "cannot encode")
	assert.Equal(t, 0, wb.Len(), "nothing queued when the append cannot be made")
	_, err = New(Options[string, int]{Store: newWBStore(), Journal: j})
	assert.ErrorContains(t, err, "already used")

	// Without Redis a write cannot be made durable, so it is refused.
	gone := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	defer gone.Close()
	j2 := &Journal[string, int]{client: gone, stream: "s", group: "g", consumer: "c", keys: cache.JSON[string]{}, values: cache.JSON[int]{}, claimIdle: time.Minute, timeout: 5 * time.Second}
	wb2 := newTestWB(t, Options[string, int]{Store: newWBStore(), Journal: j2})
	err = wb2.Write(ctx, "a", 1)
	assert.ErrorContains(t, err, "writebehind: journal: append")
	assert.NotErrorIs(t, err, ErrJournalAmbiguous, "no connection was made: surely not appended")
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
	wb, err := New(Options[string, int]{Store: wbBatchStore{newWBStore()}, Delay: time.Millisecond, Journal: j})
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

// FuzzJournalEntry: any write survives encoding into stream fields and back, and decoding
// arbitrary fields never panics.
func FuzzJournalEntry(f *testing.F) {
	f.Add("user:1", 42, false, "x", "y")
	f.Add("", -1, true, `"k"`, "not json")
	f.Add("ключ\x00", 0, false, "", "")
	j := &Journal[string, int]{keys: cache.JSON[string]{}, values: cache.JSON[int]{}}
	f.Fuzz(func(t *testing.T, key string, value int, del bool, rawKey, rawValue string) {
		w := cache.Write[string, int]{Key: key, Value: value, Delete: del}
		if del {
			w.Value = 0
		}
		fields, err := j.encode(w)
		require.NoError(t, err)
		values := map[string]any{}
		for i := 0; i < len(fields); i += 2 {
			switch v := fields[i+1].(type) {
			case []byte:
				values[fields[i].(string)] = string(v)
			default:
				values[fields[i].(string)] = v
			}
		}
		e, err := j.decode(redis.XMessage{ID: "1-1", Values: values})
		require.NoError(t, err)
		if !utf8.ValidString(key) {
			return // JSON replaces invalid bytes
		}
		assert.Equal(t, w, e.w)

		_, _ = j.decode(redis.XMessage{ID: "2-2", Values: map[string]any{journalKey: rawKey, journalValue: rawValue}})
		assert.False(t, journalIDLess(rawKey, rawKey), "irreflexive")
		assert.False(t, journalIDLess(rawKey, rawValue) && journalIDLess(rawValue, rawKey), "asymmetric")
	})
}
