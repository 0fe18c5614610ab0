package rediscache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/redis/go-redis/v9"
)

var _ cache.ManyLeaser[string, int] = (*Store[string, int])(nil)

// leaseScript takes or joins a lease. The marker lives in the value's own key, so a Set or a
// Delete of the key (one command on one key, cluster-safe) ends the lease with the value.
// Returns {1, marker} for a lease, {2, value} when the key holds a value.
var leaseScript = redis.NewScript(leaseScriptSource)

const leaseScriptSource = `
local v = redis.call('GET', KEYS[1])
if v then
  if string.sub(v, 1, string.len(ARGV[3])) == ARGV[3] then
    return {1, v}
  end
  return {2, v}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, ARGV[1]}
`

// fillScript is the back-fill's compare-and-set: it stores the value only while the key still
// holds the loader's lease marker.
var fillScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
`)

func newLeaseMarker() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return leasePrefix + hex.EncodeToString(b[:])
}

func (r *Store[K, V]) Lease(ctx context.Context, key K) (string, V, bool, error) {
	if r.closed.Load() {
		var zero V
		return "", zero, false, cache.ErrClosed
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	return r.leaseReply(leaseScript.Run(ctx, r.client, []string{r.redisKey(key)},
		newLeaseMarker(), r.leaseTTL.Milliseconds(), leasePrefix).Slice())
}

// LeaseMany takes the leases of keys in one pipelined round trip, each key's with the script of
// Lease (one key per script, so a cluster needs no hash tags). A server that does not have the
// script cached yet, as after a restart, costs a second round trip for its keys, which loads it.
func (r *Store[K, V]) LeaseMany(ctx context.Context, keys []K) ([]string, []cache.Result[V], error) {
	if r.closed.Load() {
		return nil, nil, cache.ErrClosed
	}
	if len(keys) == 0 {
		return nil, nil, nil
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	rkeys := make([]string, len(keys))
	for i, k := range keys {
		rkeys[i] = r.redisKey(k)
	}
	ttl := r.leaseTTL.Milliseconds()
	cmds := make([]*redis.Cmd, len(keys))
	r.pipelineLeases(ctx, rkeys, ttl, cmds, nil)
	var again []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		r.pipelineLeases(ctx, rkeys, ttl, cmds, again)
	}
	tokens, res := make([]string, len(keys)), make([]cache.Result[V], len(keys))
	failed := 0
	for i, cmd := range cmds {
		tokens[i], res[i].Value, res[i].Hit, res[i].Err = r.leaseReply(cmd.Slice())
		if cmd.Err() != nil {
			failed++
		}
	}
	if failed == len(keys) {
		return nil, nil, cmds[0].Err() // nothing got through: the server is unreachable
	}
	return tokens, res, nil
}

// pipelineLeases sends the lease script for the keys at the indexes in only (every key when only
// is nil) in one pipeline, by its SHA, or with its body, which loads it, when only is given.
func (r *Store[K, V]) pipelineLeases(ctx context.Context, rkeys []string, ttl int64, cmds []*redis.Cmd, only []int) {
	_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error { // each command keeps its own error
		send := func(i int) {
			keys, args := []string{rkeys[i]}, []any{newLeaseMarker(), ttl, leasePrefix}
			if only == nil {
				cmds[i] = leaseScript.EvalSha(ctx, p, keys, args...)
			} else {
				cmds[i] = leaseScript.Eval(ctx, p, keys, args...)
			}
		}
		if only == nil {
			for i := range rkeys {
				send(i)
			}
		}
		for _, i := range only {
			send(i)
		}
		return nil
	})
}

// leaseReply reads the lease script's reply: {1, marker} is a lease, {2, value} the key's value.
func (r *Store[K, V]) leaseReply(res []any, err error) (string, V, bool, error) {
	var zero V
	if err != nil {
		return "", zero, false, err
	}
	if len(res) != 2 {
		return "", zero, false, fmt.Errorf("rediscache: lease: unexpected reply %v", res)
	}
	data, _ := res[1].(string)
	if n, _ := res[0].(int64); n == 2 {
		v, ok, err := r.decode([]byte(data))
		return "", v, ok, err
	}
	return data, zero, false, nil
}

func (r *Store[K, V]) FillLeased(ctx context.Context, key K, token string, value V, absent bool, ttl time.Duration) (bool, error) {
	if r.closed.Load() {
		return false, cache.ErrClosed
	}
	data := absentMarker
	if !absent {
		var err error
		if data, err = r.codec.Marshal(value); err != nil {
			return false, err
		}
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	n, err := fillScript.Run(ctx, r.client, []string{r.redisKey(key)},
		token, data, r.expiry(ttl).Milliseconds()).Int()
	return n == 1, err
}
