package rediscache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
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
	r, err := New(Options[int, user]{Client: client, Prefix: "users:", TTL: time.Hour})
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
	assert.ErrorIs(t, err, cache.ErrClosed)
}

func TestNewRedisReportsEveryProblem(t *testing.T) {
	_, err := New(Options[string, int]{TTL: -1})
	require.Error(t, err)
	assert.ErrorContains(t, err, "Client is required")
	assert.ErrorContains(t, err, "TTL -1ns is negative")
}

// Redis down: reads fall through to the loader (fail open) and report the failure; writes return
// it. Nothing panics.
func TestFailOpenWhenRedisIsDown(t *testing.T) {
	ctx := context.Background()
	mr, client := newMiniredis(t)
	client.Options().MaxRetries = -1
	d := newDB(map[string]int{"a": 1, "b": 2})
	var levelErrs []error
	c, err := cache.New(cache.Options[string, int]{
		Levels: []cache.Level[string, int]{{Store: newTestMemory(t)}, {Name: "redis", Store: newTestRedis(t, client)}},
		Loader: d, BatchLoader: d, Writer: d,
		Hooks: cache.Hooks[string]{OnError: func(_ context.Context, i cache.ErrorInfo[string]) { levelErrs = append(levelErrs, i.Err) }},
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
	var le *cache.LevelError
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

func FuzzRedisDecode(f *testing.F) {
	f.Add([]byte(`{"id":1,"name":"a"}`))
	f.Add(absentMarker)
	f.Add([]byte{})
	f.Add([]byte("\x00girder"))
	r := &Store[int, user]{codec: cache.JSON[user]{}}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, hit, err := r.decode(data)
		switch {
		case hit:
			require.NoError(t, err)
			again, err := cache.JSON[user]{}.Marshal(v)
			require.NoError(t, err)
			_, hit, err = r.decode(again)
			require.NoError(t, err)
			require.True(t, hit)
		case errors.Is(err, cache.ErrNotFound):
			require.Equal(t, absentMarker, data)
		default:
			require.Error(t, err)
		}
	})
}
