package shard

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// HashRouterOptions configures a HashRouter.
type HashRouterOptions struct {
	// Shards is the fixed number of shards, numbered 0…Shards-1. Required.
	Shards int
	// HashTags hashes only the tag of keys that have one, as Redis Cluster does: the bytes
	// between the first '{' and the first '}' after it, when there are any. "user:{42}:cart" and
	// "user:{42}:orders" then land on one shard.
	HashTags bool
}

// Validate reports every problem with the options.
func (o *HashRouterOptions) Validate() error {
	var p []string
	if o.Shards <= 0 {
		p = append(p, fmt.Sprintf("Shards %d must be > 0", o.Shards))
	}
	return optionErrors(p)
}

// HashRouter routes keys to a fixed number of shards with a hash that any language can compute:
//
//	shard = XXH64(key, seed 0) mod Shards
//
// where XXH64 is the 64-bit xxHash of the key's bytes (KeyHash), read as an unsigned integer, and
// the key is reduced to its hash tag first when HashTags is set. For example XXH64("") is
// 0xef46db3751d8e999 and XXH64("abc") is 0x44bc2cf5ad770999, so with 10 shards "" goes to shard 1
// and "abc" to shard 9. Changing Shards moves almost every key; when shards come and go, use a
// Placement instead.
//
// A HashRouter is immutable and safe for concurrent use.
type HashRouter struct {
	n    uint64
	tags bool
}

// NewHashRouter returns a router over opts.Shards shards.
func NewHashRouter(opts HashRouterOptions) (*HashRouter, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &HashRouter{n: uint64(opts.Shards), tags: opts.HashTags}, nil
}

// Shards returns the number of shards.
func (r *HashRouter) Shards() int { return int(r.n) }

// Shard returns key's shard in [0, Shards).
func (r *HashRouter) Shard(key string) int {
	if r.tags {
		key = hashTag(key)
	}
	return int(xxhash.Sum64String(key) % r.n)
}

// ShardBytes is Shard for a key held as bytes.
func (r *HashRouter) ShardBytes(key []byte) int {
	if r.tags {
		if i := bytes.IndexByte(key, '{'); i >= 0 {
			if j := bytes.IndexByte(key[i+1:], '}'); j > 0 {
				key = key[i+1 : i+1+j]
			}
		}
	}
	return int(xxhash.Sum64(key) % r.n)
}

// hashTag returns the part of key that is hashed under HashTags.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}
