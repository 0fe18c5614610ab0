package cache

import (
	"context"
	"errors"
	"hash/fnv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type user struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func TestRedisStoreKeysTTLAndCodec(t *testing.T) {
	ctx := context.Background()
	mr, client := newMiniredis(t)
	r, err := NewRedis(RedisOptions[int, user]{Client: client, Prefix: "users:", TTL: time.Hour})
	require.NoError(t, err)

	require.NoError(t, r.Set(ctx, 7, user{ID: 7, Name: "ada"}, 0))
	raw, err := mr.Get("users:7")
	require.NoError(t, err)
	assert.JSONEq(t, `{"id":7,"name":"ada"}`, raw, "JSON by default, readable with redis-cli")
	assert.Equal(t, time.Hour, mr.TTL("users:7"), "the store's TTL when none is given")
	require.NoError(t, r.Set(ctx, 8, user{ID: 8}, time.Minute))
	assert.Equal(t, time.Minute, mr.TTL("users:8"))

	require.NoError(t, mr.Set("users:9", "not json"))
	_, ok, err := r.Get(ctx, 9)
	assert.False(t, ok)
	assert.ErrorContains(t, err, "json decode", "a codec error is an error, not a miss")
	res, err := r.GetMany(ctx, []int{7, 9})
	require.NoError(t, err)
	assert.True(t, res[0].Hit)
	assert.Error(t, res[1].Err)

	require.NoError(t, r.Close())
	_, _, err = r.Get(ctx, 7)
	assert.ErrorIs(t, err, ErrClosed)
}

func TestNewRedisReportsEveryProblem(t *testing.T) {
	_, err := NewRedis(RedisOptions[string, int]{TTL: -1})
	require.Error(t, err)
	assert.ErrorContains(t, err, "Client is required")
	assert.ErrorContains(t, err, "TTL -1ns is negative")
}

func TestNewMemoryReportsEveryProblem(t *testing.T) {
	_, err := NewMemory(MemoryOptions[string, int]{MaxSize: 5, MaxWeight: 5, TTL: -1})
	require.Error(t, err)
	assert.ErrorContains(t, err, "exclusive")
	assert.ErrorContains(t, err, "go together")
	assert.ErrorContains(t, err, "TTL")
}

func TestMemoryWeight(t *testing.T) {
	ctx := context.Background()
	m, err := NewMemory(MemoryOptions[string, string]{MaxWeight: 100, Weigher: func(_ string, v string) uint32 { return uint32(len(v)) }})
	require.NoError(t, err)
	defer m.Close()
	for i := range 50 {
		require.NoError(t, m.Set(ctx, string(rune('a'+i)), "0123456789", 0))
	}
	m.c.CleanUp()
	assert.LessOrEqual(t, m.Len(), 10)
}

// Redis down: reads fall through to the loader (fail open) and report the failure; writes return
// it. Nothing panics.
func TestFailOpenWhenRedisIsDown(t *testing.T) {
	ctx := context.Background()
	mr, client := newMiniredis(t)
	client.Options().MaxRetries = -1
	d := newDB(map[string]int{"a": 1, "b": 2})
	var levelErrs []error
	c, err := New(Options[string, int]{
		Levels: []Level[string, int]{{Store: newTestMemory(t)}, {Name: "redis", Store: newTestRedis(t, client)}},
		Loader: d, BatchLoader: d, Writer: d,
		Hooks: Hooks[string]{OnError: func(_ context.Context, _ string, err error) { levelErrs = append(levelErrs, err) }},
	})
	require.NoError(t, err)
	defer c.Close()

	mr.Close()
	v, err := c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	got, err := c.GetMany(ctx, []string{"b"})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"b": 2}, got)
	require.NotEmpty(t, levelErrs)
	var le *LevelError
	require.ErrorAs(t, levelErrs[0], &le)
	assert.Equal(t, "redis", le.Level)
	assert.Equal(t, "get", le.Op)

	err = c.Set(ctx, "a", 3)
	require.ErrorAs(t, err, &le, "a level that fails a write is reported")
	assert.Equal(t, 3, d.rows["a"], "the store of record was written first")
	assert.Positive(t, c.Stats().Levels[1].Errors)

	require.NoError(t, mr.Restart())
	v, err = c.Get(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 3, v)
}

func TestShardedL2PlacesKeysWithAPicker(t *testing.T) {
	ctx := context.Background()
	var nodes []Store[string, int]
	var servers []interface{ Keys() []string }
	for range 3 {
		mr, client := newMiniredis(t)
		servers = append(servers, mr)
		nodes = append(nodes, newTestRedis(t, client))
	}
	// Any placement fits: a shard.Ring's lookup, jump hash, or this FNV modulo.
	pick := func(k string) int {
		h := fnv.New32a()
		h.Write([]byte(k))
		return int(h.Sum32() % 3)
	}
	l2, err := NewSharded(nodes, pick)
	require.NoError(t, err)
	d := newDB(map[string]int{})
	keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	for i, k := range keys {
		d.rows[k] = i
	}
	c, err := New(Options[string, int]{Levels: []Level[string, int]{{Store: newTestMemory(t)}, {Store: l2}}, Loader: d, BatchLoader: d})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.GetMany(ctx, keys)
	require.NoError(t, err)
	for _, k := range keys {
		assert.Contains(t, servers[pick(k)].Keys(), "test:"+k, "key %s on the node its picker names", k)
	}

	bad, err := NewSharded(nodes, func(string) int { return 3 })
	require.NoError(t, err)
	_, _, err = bad.Get(ctx, "x")
	assert.ErrorContains(t, err, "pick returned 3")
	_, err = NewSharded[string, int](nil, nil)
	assert.ErrorContains(t, err, "no stores")
	assert.ErrorContains(t, err, "pick is nil")
}

func FuzzRedisDecode(f *testing.F) {
	f.Add([]byte(`{"id":1,"name":"a"}`))
	f.Add(absentMarker)
	f.Add([]byte{})
	f.Add([]byte("\x00girder"))
	r := &Redis[int, user]{codec: JSON[user]{}}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, hit, err := r.decode(data)
		switch {
		case hit:
			require.NoError(t, err)
			again, err := JSON[user]{}.Marshal(v)
			require.NoError(t, err)
			_, hit, err = r.decode(again)
			require.NoError(t, err)
			require.True(t, hit)
		case errors.Is(err, ErrNotFound):
			require.Equal(t, absentMarker, data)
		default:
			require.Error(t, err)
		}
	})
}
