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

var _ cache.Leaser[string, int] = (*Store[string, int])(nil)

// leaseScript takes or joins a lease. The marker lives in the value's own key, so a Set or a
// Delete of the key (one command on one key, cluster-safe) ends the lease with the value.
// Returns {1, marker} for a lease, {2, value} when the key holds a value.
var leaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  if string.sub(v, 1, string.len(ARGV[3])) == ARGV[3] then
    return {1, v}
  end
  return {2, v}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, ARGV[1]}
`)

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
	var zero V
	if r.closed.Load() {
		return "", zero, false, cache.ErrClosed
	}
	ctx, cancel := r.bound(ctx)
	defer cancel()
	res, err := leaseScript.Run(ctx, r.client, []string{r.redisKey(key)},
		newLeaseMarker(), r.leaseTTL.Milliseconds(), leasePrefix).Slice()
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
