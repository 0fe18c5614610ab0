package cache

import (
	"context"
	"errors"
)

// Writer is the store of record on the write path: the database a write-through Cache writes to
// before it updates its levels, and the target a WriteBehind queue flushes to.
//
// Write stores value under key; Delete removes key, and deleting a key that does not exist is not
// an error. Both must be safe for concurrent use.
type Writer[K comparable, V any] interface {
	Write(ctx context.Context, key K, value V) error
	Delete(ctx context.Context, key K) error
}

// BatchWriter is a Writer that can also apply many writes in one call (one transaction, one
// round trip). WriteBehind uses it when the Writer implements it.
type BatchWriter[K comparable, V any] interface {
	Writer[K, V]
	// WriteBatch applies every write, in order. On error, the caller may retry each write alone
	// to find the ones that fail, so WriteBatch should be atomic or idempotent.
	WriteBatch(ctx context.Context, writes []Write[K, V]) error
}

// Write is one change to the store of record: a value to store, or a deletion.
type Write[K comparable, V any] struct {
	Key    K
	Value  V    // ignored when Delete is true
	Delete bool // the key is removed
}

// WriterFuncs adapts two functions to a Writer.
type WriterFuncs[K comparable, V any] struct {
	WriteFunc  func(ctx context.Context, key K, value V) error
	DeleteFunc func(ctx context.Context, key K) error
}

// errNoFunc is what a WriterFuncs whose function is nil returns instead of panicking.
var errNoFunc = errors.New("cache: WriterFuncs: function is nil")

// Write calls f.WriteFunc.
func (f WriterFuncs[K, V]) Write(ctx context.Context, key K, value V) error {
	if f.WriteFunc == nil {
		return errNoFunc
	}
	return f.WriteFunc(ctx, key, value)
}

// Delete calls f.DeleteFunc.
func (f WriterFuncs[K, V]) Delete(ctx context.Context, key K) error {
	if f.DeleteFunc == nil {
		return errNoFunc
	}
	return f.DeleteFunc(ctx, key)
}
