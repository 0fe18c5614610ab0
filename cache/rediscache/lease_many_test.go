package rediscache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkLeaseMany takes the leases of keys in every state at once: each key's answer must be what
// Lease answers for it alone. flushScripts empties the servers' script caches, as a restart does,
// so that the pipeline meets NOSCRIPT and loads the script. prefix tells the keys of one run apart.
func checkLeaseMany(t *testing.T, store *Store[string, int], prefix string, flushScripts func() error) {
	t.Helper()
	ctx := context.Background()
	key := func(name string, i int) string { return fmt.Sprintf("%s%s-%d", prefix, name, i) }
	type want struct {
		key    string
		token  string // "" for no lease, "new" for a fresh one, else the lease held already
		value  int
		hit    bool
		absent bool
	}
	var wants []want
	for i := range 4 { // four of each state, so that a cluster's keys spread over its masters
		fresh, valued, absent, held := key("fresh", i), key("valued", i), key("absent", i), key("held", i)
		require.NoError(t, store.Set(ctx, valued, 100+i, time.Minute))
		require.NoError(t, store.SetAbsent(ctx, absent, time.Minute))
		token, _, _, err := store.Lease(ctx, held)
		require.NoError(t, err)
		require.NotEmpty(t, token)
		wants = append(wants,
			want{key: fresh, token: "new"},
			want{key: valued, value: 100 + i, hit: true},
			want{key: absent, absent: true},
			want{key: held, token: token},
		)
	}
	keys := make([]string, len(wants))
	for i, w := range wants {
		keys[i] = w.key
	}

	for _, round := range []string{"scripts cached", "scripts flushed"} {
		if round == "scripts flushed" {
			// The fresh keys' leases of the first round are held now: their tokens come back.
			require.NoError(t, flushScripts())
		}
		tokens, res, err := store.LeaseMany(ctx, keys)
		require.NoError(t, err, round)
		require.Len(t, tokens, len(keys))
		require.Len(t, res, len(keys))
		for i, w := range wants {
			switch w.token {
			case "":
				assert.Empty(t, tokens[i], "%s: %s", round, w.key)
			case "new":
				assert.NotEmpty(t, tokens[i], "%s: %s", round, w.key)
				wants[i].token = tokens[i]
			default:
				assert.Equal(t, w.token, tokens[i], "%s: %s joins the lease held", round, w.key)
			}
			if w.absent {
				assert.ErrorIs(t, res[i].Err, cache.ErrNotFound, "%s: %s", round, w.key)
			} else {
				assert.NoError(t, res[i].Err, "%s: %s", round, w.key)
			}
			assert.Equal(t, w.hit, res[i].Hit, "%s: %s", round, w.key)
			assert.Equal(t, w.value, res[i].Value, "%s: %s", round, w.key)
		}
	}
	// The tokens are real leases: one FillLeasedMany lands each (the servers without the fill
	// script), but for a key written meanwhile; a second lands none.
	require.NoError(t, flushScripts())
	var fills []cache.LeasedFill[string, int]
	for _, w := range wants {
		if w.token != "" {
			fills = append(fills, cache.LeasedFill[string, int]{Key: w.key, Token: w.token, Value: 7, TTL: time.Minute})
		}
	}
	written, absent := fills[0].Key, fills[1].Key
	fills[1].Absent = true
	require.NoError(t, store.Set(ctx, written, 9, time.Minute))
	for _, round := range []string{"first", "again"} {
		filled, errs := store.FillLeasedMany(ctx, fills)
		require.Len(t, filled, len(fills))
		require.Len(t, errs, len(fills))
		for i, f := range fills {
			assert.NoError(t, errs[i], "%s: %s", round, f.Key)
			assert.Equal(t, round == "first" && f.Key != written, filled[i], "%s: %s", round, f.Key)
		}
	}
	for _, f := range fills {
		v, hit, err := store.Get(ctx, f.Key)
		switch f.Key {
		case written:
			assert.True(t, hit && v == 9, "the write stays")
		case absent:
			assert.ErrorIs(t, err, cache.ErrNotFound, "an absence filled")
		default:
			require.NoError(t, err)
			assert.True(t, hit && v == 7, f.Key)
		}
	}
}

func TestLeaseMany(t *testing.T) {
	mr, client := newMiniredis(t)
	store := newTestRedis(t, client)
	checkLeaseMany(t, store, "", func() error { return client.ScriptFlush(context.Background()).Err() })

	t.Run("a value the codec cannot encode", func(t *testing.T) {
		_, client := newMiniredis(t)
		s, err := New(Options[string, int]{Client: client, Prefix: "test:", Codec: picky{}})
		require.NoError(t, err)
		ctx := context.Background()
		tokens, _, err := s.LeaseMany(ctx, []string{"bad", "good"})
		require.NoError(t, err)
		filled, errs := s.FillLeasedMany(ctx, []cache.LeasedFill[string, int]{
			{Key: "bad", Token: tokens[0], Value: 13, TTL: time.Minute},
			{Key: "good", Token: tokens[1], Value: 7, TTL: time.Minute},
		})
		assert.Equal(t, []bool{false, true}, filled)
		assert.ErrorIs(t, errs[0], errUnlucky)
		assert.NoError(t, errs[1])
		raw, err := client.Get(ctx, "test:bad").Result()
		require.NoError(t, err)
		assert.Equal(t, leasePrefix, raw[:len(leasePrefix)], "the lease still holds the key: nothing was sent")
	})
	t.Run("no keys", func(t *testing.T) {
		tokens, res, err := store.LeaseMany(context.Background(), nil)
		assert.NoError(t, err)
		assert.Empty(t, tokens)
		assert.Empty(t, res)
	})
	t.Run("unreachable", func(t *testing.T) {
		mr.Close()
		tokens, res, err := store.LeaseMany(context.Background(), []string{"a", "b"})
		assert.Error(t, err)
		assert.Nil(t, tokens)
		assert.Nil(t, res)
		filled, errs := store.FillLeasedMany(context.Background(), []cache.LeasedFill[string, int]{{Key: "a", Token: "t"}, {Key: "b", Token: "t"}})
		assert.Equal(t, []bool{false, false}, filled)
		for _, err := range errs {
			assert.Error(t, err)
		}
	})
	t.Run("closed", func(t *testing.T) {
		_, client := newMiniredis(t)
		s := newTestRedis(t, client)
		require.NoError(t, s.Close())
		_, _, err := s.LeaseMany(context.Background(), []string{"a"})
		assert.True(t, errors.Is(err, cache.ErrClosed), "%v", err)
		filled, errs := s.FillLeasedMany(context.Background(), []cache.LeasedFill[string, int]{{Key: "a", Token: "t"}})
		assert.Equal(t, []bool{false}, filled)
		assert.ErrorIs(t, errs[0], cache.ErrClosed)
	})
}

// scriptCounter counts the commands of one of the store's scripts that a client sends, alone and
// in pipelines.
type scriptCounter struct {
	script                      *redis.Script
	source                      string
	alone, pipelines, pipelined atomic.Int64
}

func (c *scriptCounter) is(cmd redis.Cmder) bool {
	args := cmd.Args()
	return len(args) > 1 && (args[0] == "evalsha" && args[1] == c.script.Hash() || args[0] == "eval" && args[1] == c.source)
}

func (c *scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if c.is(cmd) {
			c.alone.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := 0
		for _, cmd := range cmds {
			if c.is(cmd) {
				n++
			}
		}
		if n > 0 {
			c.pipelines.Add(1)
			c.pipelined.Add(int64(n))
		}
		return next(ctx, cmds)
	}
}

// TestGetManyTakesLeasesInOneRoundTrip checks that GetMany takes the leases of the keys that
// missed Redis with LeaseMany and back-fills them with FillLeasedMany, one pipeline each,
// instead of one script call per key, and that the leases work: the keys are back-filled.
func TestGetManyTakesLeasesInOneRoundTrip(t *testing.T) {
	_, client := newMiniredis(t)
	leases := &scriptCounter{script: leaseScript, source: leaseScriptSource}
	fills := &scriptCounter{script: fillScript, source: fillScriptSource}
	client.AddHook(leases)
	client.AddHook(fills)
	rows := map[string]int{}
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
		rows[keys[i]] = i
	}
	c, err := cache.New(cache.Options[string, int]{
		Levels: []cache.Level[string, int]{{Store: newTestMemory(t), TTL: time.Minute}, {Store: newTestRedis(t, client), TTL: time.Minute}},
		Loader: newDB(rows),
	})
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	// The scripts are loaded, as after earlier leases; checkLeaseMany covers a server without them.
	require.NoError(t, leaseScript.Load(ctx, client).Err())
	require.NoError(t, fillScript.Load(ctx, client).Err())
	got, err := c.GetMany(ctx, keys)
	require.NoError(t, err)
	assert.Equal(t, rows, got)
	for _, sc := range []*scriptCounter{leases, fills} {
		assert.Equal(t, int64(0), sc.alone.Load(), "none alone")
		assert.Equal(t, int64(1), sc.pipelines.Load(), "one pipeline")
		assert.Equal(t, int64(len(keys)), sc.pipelined.Load(), "one per key")
	}
	for _, k := range keys {
		raw, err := client.Get(ctx, "test:"+k).Result()
		require.NoError(t, err, k)
		assert.Equal(t, fmt.Sprint(rows[k]), raw, "%s back-filled through its lease", k)
	}
}

var errUnlucky = errors.New("13 is unlucky")

// picky is the JSON codec but for 13, which it refuses to encode.
type picky struct{ cache.JSON[int] }

func (p picky) Marshal(v int) ([]byte, error) {
	if v == 13 {
		return nil, errUnlucky
	}
	return p.JSON.Marshal(v)
}
