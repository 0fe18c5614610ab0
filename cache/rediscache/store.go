package rediscache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/redis/go-redis/v9"
)

// Options configures a Redis store.
type Options[K comparable, V any] struct {
	// Client is the connection to Redis: a *redis.Client, *redis.Ring or *redis.ClusterClient.
	// Required. The store does not close it.
	Client redis.UniversalClient
	// Prefix is put before every key ("users:"), so that several stores share one database.
	Prefix string
	// Codec turns values into bytes; nil means JSON.
	Codec cache.Codec[V]
	// Key turns a key into the string Redis sees (after Prefix); nil means the key itself for
	// string keys and fmt.Sprint for the others.
	Key func(K) string
	// TTL is how long a value lives when Set is given ttl <= 0; 0 means until Redis evicts it.
	TTL time.Duration
	// LeaseTTL is how long the lease a Cache takes on a miss lasts (see the package documentation,
	// "Leases"): a load that takes longer does not back-fill. 0 means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// Timeout bounds every call to Redis but the reads (Get, GetMany): a deadline put on ctx when
	// ctx has none earlier, so that a Set, a Delete, a miss's lease and its back-fill return when
	// Redis is paused, stopped or unreachable. Reads are left to ctx and the client's ReadTimeout,
	// so that a hit costs no timer. 0 means DefaultTimeout. go-redis applies a ctx deadline to the socket only when the client's
	// ContextTimeoutEnabled is set; otherwise a call ends at the earlier of ctx's deadline plus one
	// attempt's ReadTimeout (3 s by default) and the client's own retries.
	Timeout time.Duration
}

// DefaultLeaseTTL is the lease of a Redis level when Options.LeaseTTL is 0.
const DefaultLeaseTTL = 10 * time.Second

// DefaultTimeout bounds each call to Redis when Options.Timeout is 0.
const DefaultTimeout = time.Second

// Store is a level of a cache.Cache kept in Redis (go-redis v9), shared by every instance of an
// application. Values go through a cache.Codec; batch reads and writes are pipelined, one round
// trip per call (per node with a Ring or a cluster). It is a cache.NegativeStore and a
// cache.Leaser.
//
// Store is safe for concurrent use.
type Store[K comparable, V any] struct {
	client   redis.UniversalClient
	prefix   string
	codec    cache.Codec[V]
	key      func(K) string
	ttl      time.Duration
	leaseTTL time.Duration
	wait     time.Duration
	closed   atomic.Bool
}

// leasePrefix starts the marker a lease leaves in a key while its holder loads (the marker is the
// prefix and a random token). Like absentMarker it starts with a NUL byte, so no encoded value
// looks like it; a read that finds it is a miss.
const leasePrefix = "\x00girder:lease:"

// absentMarker is stored for a remembered absence. It starts with a NUL byte, which neither JSON
// nor any text encoding produces, so it cannot be mistaken for an encoded value.
var absentMarker = []byte("\x00girder:absent")

var _ cache.NegativeStore[string, int] = (*Store[string, int])(nil)

// Validate reports every problem of o at once. New calls it.
func (o Options[K, V]) Validate() error {
	var errs []error
	if o.Client == nil {
		errs = append(errs, errors.New("rediscache: Options.Client is required"))
	}
	if o.TTL < 0 {
		errs = append(errs, fmt.Errorf("rediscache: Options.TTL %v is negative", o.TTL))
	}
	if o.LeaseTTL < 0 {
		errs = append(errs, fmt.Errorf("rediscache: Options.LeaseTTL %v is negative", o.LeaseTTL))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("rediscache: Options.Timeout %v is negative", o.Timeout))
	}
	return errors.Join(errs...)
}

// New returns a Redis store configured by opts; it reports every problem of opts at once
// (Validate).
func New[K comparable, V any](opts Options[K, V]) (*Store[K, V], error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	r := &Store[K, V]{client: opts.Client, prefix: opts.Prefix, codec: opts.Codec, key: opts.Key, ttl: opts.TTL,
		leaseTTL: opts.LeaseTTL, wait: opts.Timeout}
	if r.leaseTTL == 0 {
		r.leaseTTL = DefaultLeaseTTL
	}
	if r.wait == 0 {
		r.wait = DefaultTimeout
	}
	if r.codec == nil {
		r.codec = cache.JSON[V]{}
	}
	if r.key == nil {
		r.key = defaultKey[K]
	}
	return r, nil
}

func defaultKey[K comparable](k K) string {
	if s, ok := any(k).(string); ok {
		return s
	}
	return fmt.Sprint(k)
}

// bound puts the store's Timeout on ctx unless ctx ends earlier. The common case, a ctx with an
// earlier deadline, costs no allocation.
func (r *Store[K, V]) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= r.wait {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, r.wait)
}

func (r *Store[K, V]) redisKey(k K) string { return r.prefix + r.key(k) }

func (r *Store[K, V]) expiry(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return r.ttl
	}
	return ttl
}

// decode reads one stored value: a remembered absence, or a value of the codec.
func (r *Store[K, V]) decode(data []byte) (V, bool, error) {
	if len(data) > 0 && data[0] == 0 {
		var zero V
		if bytes.Equal(data, absentMarker) {
			return zero, false, cache.ErrNotFound
		}
		if bytes.HasPrefix(data, []byte(leasePrefix)) {
			return zero, false, nil
		}
	}
	v, err := r.codec.Unmarshal(data)
	if err != nil {
		return v, false, err
	}
	return v, true, nil
}

// Get returns the value of key; see cache.Store for the meaning of the results.
func (r *Store[K, V]) Get(ctx context.Context, key K) (V, bool, error) {
	var zero V
	if r.closed.Load() {
		return zero, false, cache.ErrClosed
	}
	data, err := r.client.Get(ctx, r.redisKey(key)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return zero, false, nil
	case err != nil:
		return zero, false, err
	}
	return r.decode(data)
}

// Set stores value for ttl (the store's TTL when ttl <= 0).
func (r *Store[K, V]) Set(ctx context.Context, key K, value V, ttl time.Duration) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if r.closed.Load() {
		return cache.ErrClosed
	}
	data, err := r.codec.Marshal(value)
	if err != nil {
		return err
	}
	return r.client.Set(ctx, r.redisKey(key), data, r.expiry(ttl)).Err()
}

// SetAbsent remembers for ttl that key does not exist.
func (r *Store[K, V]) SetAbsent(ctx context.Context, key K, ttl time.Duration) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if r.closed.Load() {
		return cache.ErrClosed
	}
	return r.client.Set(ctx, r.redisKey(key), absentMarker, r.expiry(ttl)).Err()
}

// Delete removes key.
func (r *Store[K, V]) Delete(ctx context.Context, key K) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if r.closed.Load() {
		return cache.ErrClosed
	}
	return r.client.Del(ctx, r.redisKey(key)).Err()
}

// GetMany reads every key in one pipelined round trip. GETs are pipelined rather than sent as one
// MGET so that the call also works on a cluster, where MGET fails for keys in different slots.
func (r *Store[K, V]) GetMany(ctx context.Context, keys []K) ([]cache.Result[V], error) {
	if r.closed.Load() {
		return nil, cache.ErrClosed
	}
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, r.redisKey(k))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	res := make([]cache.Result[V], len(keys))
	for i, cmd := range cmds {
		data, err := cmd.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			res[i].Err = err
		default:
			res[i].Value, res[i].Hit, res[i].Err = r.decode(data)
		}
	}
	return res, nil
}

// SetMany stores every entry in one pipelined round trip. A value the codec cannot encode fails
// the call before anything is sent.
func (r *Store[K, V]) SetMany(ctx context.Context, entries []cache.Entry[K, V]) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if r.closed.Load() {
		return cache.ErrClosed
	}
	if len(entries) == 0 {
		return nil
	}
	data := make([][]byte, len(entries))
	for i, e := range entries {
		b, err := r.codec.Marshal(e.Value)
		if err != nil {
			return err
		}
		data[i] = b
	}
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range entries {
			p.Set(ctx, r.redisKey(e.Key), data[i], r.expiry(e.TTL))
		}
		return nil
	})
	return err
}

// DeleteMany removes every key in one pipelined round trip (one DEL per key, so that it works on
// a cluster).
func (r *Store[K, V]) DeleteMany(ctx context.Context, keys []K) error {
	ctx, cancel := r.bound(ctx)
	defer cancel()
	if r.closed.Load() {
		return cache.ErrClosed
	}
	if len(keys) == 0 {
		return nil
	}
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Del(ctx, r.redisKey(k))
		}
		return nil
	})
	return err
}

// Close marks the store closed; it does not close the client, which the caller owns. Idempotent.
func (r *Store[K, V]) Close() error {
	r.closed.Store(true)
	return nil
}
