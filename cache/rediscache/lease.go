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
var fillScript = redis.NewScript(fillScriptSource)

const fillScriptSource = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
`

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
	ttl := r.leaseTTL.Milliseconds()
	cmds := r.scriptPipeline(ctx, leaseScript, len(keys), func(i int) ([]string, []any) {
		return []string{r.redisKey(keys[i])}, []any{newLeaseMarker(), ttl, leasePrefix}
	})
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

// FillLeasedMany makes the back-fills in one pipelined round trip, each with the script of
// FillLeased (a second one, as for LeaseMany, on a server without the script). A value the codec
// cannot encode is that fill's error, and is not sent.
func (r *Store[K, V]) FillLeasedMany(ctx context.Context, fills []cache.LeasedFill[K, V]) ([]bool, []error) {
	filled, errs := make([]bool, len(fills)), make([]error, len(fills))
	if r.closed.Load() {
		for i := range errs {
			errs[i] = cache.ErrClosed
		}
		return filled, errs
	}
	data, send := make([][]byte, len(fills)), make([]int, 0, len(fills))
	for i, f := range fills {
		data[i], errs[i] = r.fillData(f.Value, f.Absent)
		if errs[i] == nil {
			send = append(send, i)
		}
	}
	if len(send) == 0 {
		return filled, errs
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	cmds := r.scriptPipeline(ctx, fillScript, len(send), func(n int) ([]string, []any) {
		f := &fills[send[n]]
		return []string{r.redisKey(f.Key)}, []any{f.Token, data[send[n]], r.expiry(f.TTL).Milliseconds()}
	})
	for n, i := range send {
		v, err := cmds[n].Int()
		filled[i], errs[i] = v == 1, err
	}
	return filled, errs
}

// scriptPipeline runs script n times in one pipeline, by its SHA, with the keys and arguments
// that args returns for each, and returns each run's command. The runs that met a server
// without the script (NOSCRIPT, as after a restart) are sent again in a second pipeline with its
// body, which loads it.
func (r *Store[K, V]) scriptPipeline(ctx context.Context, script *redis.Script, n int, args func(int) ([]string, []any)) []*redis.Cmd {
	cmds := make([]*redis.Cmd, n)
	send := func(only []int, eval bool) {
		_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error { // each command keeps its own error
			for _, i := range only {
				keys, argv := args(i)
				if eval {
					cmds[i] = script.Eval(ctx, p, keys, argv...)
				} else {
					cmds[i] = script.EvalSha(ctx, p, keys, argv...)
				}
			}
			return nil
		})
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	send(all, false)
	var again []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		send(again, true)
	}
	return cmds
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
	data, err := r.fillData(value, absent)
	if err != nil {
		return false, err
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	n, err := fillScript.Run(ctx, r.client, []string{r.redisKey(key)},
		token, data, r.expiry(ttl).Milliseconds()).Int()
	return n == 1, err
}

// fillData is what a back-fill stores: the encoded value, or the absence marker.
func (r *Store[K, V]) fillData(value V, absent bool) ([]byte, error) {
	if absent {
		return absentMarker, nil
	}
	return r.codec.Marshal(value)
}
