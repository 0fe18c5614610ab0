// Package shardmap is the bounded, sharded map from key to per-key state behind ratelimit.Keyed
// and redislimit.Hybrid.
package shardmap

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// shardCount is the number of independently locked parts of a Map; a power of two so a
// hash picks one with a mask.
const shardCount = 64

// Map is the bounded, sharded map from key to per-key state behind Keyed and Hybrid. A
// lookup of an existing key takes one shard's read lock; no operation takes a global lock.
type Map[V any] struct {
	seed    maphash.Seed
	maxKeys int64
	count   atomic.Int64
	shards  [shardCount]mapShard[V]
	// rank orders entries for eviction when the map is full: the lowest goes first.
	rank func(*V) int64
	// retire marks an entry removed, so that a caller still holding it looks the key up again.
	retire func(*V)
}

type mapShard[V any] struct {
	mu sync.RWMutex
	m  map[string]*V
	_  [40]byte // keep neighbouring shards' locks off one cache line
}

func New[V any](maxKeys int, rank func(*V) int64, retire func(*V)) *Map[V] {
	m := &Map[V]{seed: maphash.MakeSeed(), maxKeys: int64(maxKeys), rank: rank, retire: retire}
	for i := range m.shards {
		m.shards[i].m = make(map[string]*V)
	}
	return m
}

// Get returns key's entry, creating it with newV if needed and evicting another entry if the
// map is then over its bound.
func (m *Map[V]) Get(key string, newV func() *V) *V {
	i := maphash.String(m.seed, key) & (shardCount - 1)
	s := &m.shards[i]
	s.mu.RLock()
	v := s.m[key]
	s.mu.RUnlock()
	if v != nil {
		return v
	}
	s.mu.Lock()
	if v = s.m[key]; v != nil {
		s.mu.Unlock()
		return v
	}
	v = newV()
	s.m[key] = v
	s.mu.Unlock()
	if m.count.Add(1) > m.maxKeys {
		m.evictOne(int(i), key)
	}
	return v
}

// evictSample is how many entries evictOne compares to choose its victim.
const evictSample = 8

// evictOne drops the lowest-ranked of a sample of entries, other than the one just added, while
// the map is over its bound. The sample is taken under read locks from the shards following the
// one that just grew (map iteration starts at a random place, so it varies); only the victim's
// shard is then write-locked. A new entry is the least valuable one, so without the exception it
// would always be the victim.
func (m *Map[V]) evictOne(start int, added string) {
	for range 4 { // a victim can vanish between sampling and locking: choose again
		if m.count.Load() <= m.maxKeys {
			return
		}
		var victim string
		var vv *V
		var vs *mapShard[V]
		var low int64
		seen := 0
		for i := 0; i < shardCount && seen < evictSample; i++ {
			s := &m.shards[(start+i)%shardCount]
			s.mu.RLock()
			for key, v := range s.m {
				if key == added {
					continue
				}
				if r := m.rank(v); vv == nil || r < low {
					victim, vv, vs, low = key, v, s, r
				}
				if seen++; seen == evictSample {
					break
				}
			}
			s.mu.RUnlock()
		}
		if vv == nil {
			return
		}
		vs.mu.Lock()
		if vs.m[victim] == vv {
			m.retire(vv)
			delete(vs.m, victim)
			m.count.Add(-1)
			vs.mu.Unlock()
			return
		}
		vs.mu.Unlock()
	}
}

// Sweep removes every entry for which drop returns true; drop must retire the entry itself,
// atomically with its decision. It locks one shard at a time.
func (m *Map[V]) Sweep(drop func(*V) bool) {
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		for key, v := range s.m {
			if drop(v) {
				delete(s.m, key)
				m.count.Add(-1)
			}
		}
		s.mu.Unlock()
	}
}

// Len returns the number of entries.
func (m *Map[V]) Len() int { return int(m.count.Load()) }
