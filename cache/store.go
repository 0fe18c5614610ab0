package cache

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound means the key does not exist in the store of record. A Loader returns it for a key it
// does not know; Cache.Get returns it, and a Store's Get returns it for a key whose absence it
// remembers (negative caching).
var ErrNotFound = errors.New("cache: not found")

// ErrClosed is returned by every method of a Cache or Store after Close.
var ErrClosed = errors.New("cache: closed")

// ErrNoLoader is returned by Cache.Get for a key that no level holds when the Cache has no Loader.
var ErrNoLoader = errors.New("cache: miss and no loader")

// Store is one level of a Cache: memory in the process (Memory), Redis (Redis), several Redis nodes
// (Sharded), or anything else that keeps bytes near the application.
//
// Get tells three outcomes apart: a hit returns (value, true, nil); a miss returns (zero, false,
// nil); a key whose absence the store remembers returns (zero, false, ErrNotFound); any other error
// is a failure of the store. Set stores value for ttl; ttl <= 0 means the store's default. Deleting a
// missing key is not an error. The batch forms do the same for many keys in as few round trips as
// the store can. Implementations must be safe for concurrent use.
type Store[K comparable, V any] interface {
	Get(ctx context.Context, key K) (V, bool, error)
	Set(ctx context.Context, key K, value V, ttl time.Duration) error
	Delete(ctx context.Context, key K) error

	// GetMany returns one Result per key, in the order of keys. The error is for the whole call
	// (the store is unreachable); per-key failures, such as a value the codec cannot decode, are in
	// Result.Err.
	GetMany(ctx context.Context, keys []K) ([]Result[V], error)
	SetMany(ctx context.Context, entries []Entry[K, V]) error
	DeleteMany(ctx context.Context, keys []K) error
}

// NegativeStore is a Store that can remember that a key does not exist in the store of record, so
// that a Cache with Options.NegativeTTL does not ask the Loader again for it. Get then returns
// ErrNotFound for the key until ttl has passed or the key is set or deleted.
type NegativeStore[K comparable, V any] interface {
	Store[K, V]
	SetAbsent(ctx context.Context, key K, ttl time.Duration) error
}

// Leaser is a Store that hands out leases on misses, as in "Scaling Memcache at Facebook": a Cache
// takes a lease before it reads the store of record and back-fills the level only while the lease
// holds, so that a load that read the store of record before a write cannot overwrite that write
// (see the package documentation, "Leases"). Any Set or Delete of the key must end every lease on
// it. rediscache.Store is one.
type Leaser[K comparable, V any] interface {
	// Lease takes a lease on key, or joins the one another loader holds, and returns its token.
	// When the key holds a value after all, it returns the value (hit true, or ErrNotFound for a
	// remembered absence) and no token.
	Lease(ctx context.Context, key K) (token string, v V, hit bool, err error)
	// FillLeased stores value (or, with absent, a remembered absence) for ttl if token is still
	// the key's lease, and reports whether it did.
	FillLeased(ctx context.Context, key K, token string, value V, absent bool, ttl time.Duration) (bool, error)
}

// ManyLeaser is a Leaser that takes and fills the leases of many keys in as few round trips as it
// can. GetMany takes the leases of the keys that missed such a level with one call, and
// back-fills them with another, where it would otherwise make a call per key. rediscache.Store
// is one.
type ManyLeaser[K comparable, V any] interface {
	Leaser[K, V]
	// LeaseMany is Lease for each of keys, in their order: tokens[i] is the lease on keys[i], or
	// "" when results[i] holds what the key held after all (a hit, or ErrNotFound for a
	// remembered absence) or why its lease failed. The error is for the whole call (the store
	// is unreachable).
	LeaseMany(ctx context.Context, keys []K) (tokens []string, results []Result[V], err error)
	// FillLeasedMany is FillLeased for each of fills, in their order: filled[i] reports whether
	// fills[i] was stored, errs[i] why it could not be tried.
	FillLeasedMany(ctx context.Context, fills []LeasedFill[K, V]) (filled []bool, errs []error)
}

// LeasedFill is one back-fill through a lease, for ManyLeaser.FillLeasedMany: Value (or, with
// Absent, a remembered absence) for TTL, if Token is still Key's lease.
type LeasedFill[K comparable, V any] struct {
	Key    K
	Token  string
	Value  V
	Absent bool
	TTL    time.Duration
}

// Result is the outcome of reading one key in a batch, with the meanings of Store.Get: Hit with
// Value; a miss (Hit false, Err nil); a remembered absence (Err is ErrNotFound); a failure.
type Result[V any] struct {
	Value V
	Hit   bool
	Err   error
}

// Entry is one key and value to store, for SetMany. TTL <= 0 means the store's default.
type Entry[K comparable, V any] struct {
	Key   K
	Value V
	TTL   time.Duration
}

// Loader reads a value from the store of record (usually the database) on a miss of every level.
// Load returns ErrNotFound (possibly wrapped) for a key that does not exist. It must be safe for
// concurrent use; a Cache calls it at most once at a time per key.
type Loader[K comparable, V any] interface {
	Load(ctx context.Context, key K) (V, error)
}

// LoaderFunc adapts a function to a Loader.
type LoaderFunc[K comparable, V any] func(ctx context.Context, key K) (V, error)

// Load calls f.
func (f LoaderFunc[K, V]) Load(ctx context.Context, key K) (V, error) { return f(ctx, key) }

// BatchLoader reads many values from the store of record in one call (one query with IN, one
// round trip), for Cache.GetMany. Keys missing from the returned map do not exist.
type BatchLoader[K comparable, V any] interface {
	LoadMany(ctx context.Context, keys []K) (map[K]V, error)
}

// BatchLoaderFunc adapts a function to a BatchLoader.
type BatchLoaderFunc[K comparable, V any] func(ctx context.Context, keys []K) (map[K]V, error)

// LoadMany calls f.
func (f BatchLoaderFunc[K, V]) LoadMany(ctx context.Context, keys []K) (map[K]V, error) {
	return f(ctx, keys)
}

// LevelError is a failure of one level of a Cache. Reads report it through Hooks and go on to
// the next level (fail open); writes return it.
type LevelError struct {
	Level string // the level's name: "memory", "redis"
	Op    string // "get", "set", "delete", "get many", "set many", "delete many", "set absent"
	Err   error
}

func (e *LevelError) Error() string {
	return fmt.Sprintf("cache: level %s: %s: %v", e.Level, e.Op, e.Err)
}

func (e *LevelError) Unwrap() error { return e.Err }

// PanicError is what every caller waiting for a load receives when the Loader panics.
type PanicError struct {
	Value any    // what the loader panicked with
	Stack []byte // the loader's stack at the panic
}

func (e *PanicError) Error() string { return fmt.Sprintf("cache: loader panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error, so errors.Is sees through it.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
