package writebehind

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWriteBehindProperty: for any sequence of writes and deletes on random keys, under any
// configuration, after Close the store holds the last value of every key and no key was written
// by two calls at once.
func TestWriteBehindProperty(t *testing.T) {
	for seed := range uint64(60) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 99))
				s := newWBStore()
				var store cache.Writer[string, int] = s
				if rng.IntN(2) == 0 {
					store = wbBatchStore{s}
				}
				opts := Options[string, int]{
					Store:     store,
					Delay:     time.Duration(rng.IntN(20)-2) * time.Millisecond,
					BatchSize: 1 + rng.IntN(10),
					Flushers:  1 + rng.IntN(4),
					QueueSize: 1 + rng.IntN(16),
					WhenFull:  FullPolicy(rng.IntN(2)), // block or sync: every write is accepted
				}
				wb, err := New(opts)
				require.NoError(t, err)
				ctx := context.Background()
				want := map[string]int{}
				keys := 1 + rng.IntN(12)
				for i := range 300 {
					k := fmt.Sprint("k", rng.IntN(keys))
					switch rng.IntN(10) {
					case 0, 1:
						require.NoError(t, wb.Delete(ctx, k))
						delete(want, k)
					case 2:
						time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond)
					case 3:
						if rng.IntN(10) == 0 {
							require.NoError(t, wb.Flush(ctx))
						}
					default:
						require.NoError(t, wb.Write(ctx, k, i))
						want[k] = i
					}
				}
				require.NoError(t, wb.Close(ctx))
				data, _ := s.snapshot()
				assert.Equal(t, want, data, "%+v", opts)
				assert.False(t, s.overlap, "a key was written by two calls at once")
				assert.Equal(t, 0, wb.Len())
			})
		})
	}
}

func TestWriteBehindFlushEpochs(t *testing.T) {
	tests := []struct {
		name  string
		steps func(q *wbQueue[string, int]) // run under q.mu
		want  bool                          // epoch 0 still has outstanding writes
	}{
		{"empty", func(*wbQueue[string, int]) {}, false},
		{"queued write", func(q *wbQueue[string, int]) { q.put(cache.Write[string, int]{Key: "a"}, "", 0, false) }, true},
		{"written", func(q *wbQueue[string, int]) {
			q.put(cache.Write[string, int]{Key: "a"}, "", 0, false)
			q.done(q.take(10))
		}, false},
		{"later write absorbed keeps the old epoch", func(q *wbQueue[string, int]) {
			q.put(cache.Write[string, int]{Key: "a"}, "", 0, false)
			q.put(cache.Write[string, int]{Key: "a", Value: 2}, "", 1, false)
		}, true},
		{"reservation counts", func(q *wbQueue[string, int]) { q.reserve() }, true},
		{"reservation given back", func(q *wbQueue[string, int]) { q.unreserve(q.reserve()) }, false},
		{"older reservation lowers a newer pending epoch", func(q *wbQueue[string, int]) {
			e := q.reserve()
			q.epoch = 1
			q.put(cache.Write[string, int]{Key: "a"}, "", 1, false)
			q.putReserved(cache.Write[string, int]{Key: "a", Value: 2}, "1-1", e)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q wbQueue[string, int]
			q.init(10, 10)
			q.mu.Lock()
			tt.steps(&q)
			got := q.outstandingUpTo(0)
			q.mu.Unlock()
			assert.Equal(t, tt.want, got)
		})
	}
}
