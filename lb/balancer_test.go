package lb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestContract runs the rules every policy must keep.
func TestContract(t *testing.T) {
	for _, p := range Policies() {
		t.Run(p.String(), func(t *testing.T) {
			t.Run("no backends", func(t *testing.T) {
				b := newBalancer(t, Options[string]{Policy: p})
				_, err := b.PickKey("k")
				assert.ErrorIs(t, err, ErrNoBackend)
			})
			t.Run("none healthy: panic mode spreads over all, FailClosed fails", func(t *testing.T) {
				for _, fc := range []bool{false, true} {
					b := newBalancer(t, Options[string]{Policy: p, Backends: backends("abc"), FailClosed: fc})
					for _, n := range []string{"a", "b", "c"} {
						eject(t, b, n)
					}
					seen := map[string]bool{}
					for i := range 300 {
						l, err := b.PickKey(fmt.Sprint(i))
						if fc {
							require.ErrorIs(t, err, ErrNoBackend)
							continue
						}
						require.NoError(t, err)
						seen[l.Name()] = true
						l.Done(nil, time.Millisecond)
					}
					if !fc {
						assert.Len(t, seen, 3, "panic mode uses every backend")
					}
				}
				b := newBalancer(t, Options[string]{Policy: p, Backends: backends("a"), PanicThreshold: -1})
				eject(t, b, "a")
				_, err := b.PickKey("k")
				assert.ErrorIs(t, err, ErrNoBackend, "without panic mode")
			})
			t.Run("pick without a key", func(t *testing.T) {
				b := newBalancer(t, Options[string]{Policy: p, Backends: backends("abc")})
				_, err := b.Pick()
				doErr := b.Do(context.Background(), func(context.Context, string) error { return nil })
				if p == ConsistentHash {
					assert.ErrorIs(t, err, ErrKeyRequired)
					assert.ErrorIs(t, doErr, ErrKeyRequired)
					return
				}
				assert.NoError(t, err)
				assert.NoError(t, doErr)
			})
			t.Run("closed", func(t *testing.T) {
				b := newBalancer(t, Options[string]{Policy: p, Backends: backends("abc")})
				b.Close()
				b.Close()
				_, err := b.PickKey("k")
				assert.ErrorIs(t, err, ErrClosed)
				assert.ErrorIs(t, b.Add(Backend[string]{Name: "x"}), ErrClosed)
			})
			t.Run("skips down and unavailable", func(t *testing.T) {
				var open atomic.Bool
				bs := backends("abcd")
				bs[2].Check = AvailabilityFunc(func() bool { return !open.Load() })
				b := newBalancer(t, Options[string]{Policy: p, Backends: bs, Seed: 2})
				eject(t, b, "a")
				open.Store(true)
				for i := range 200 {
					l, err := b.PickKey(fmt.Sprint(i))
					require.NoError(t, err)
					assert.Contains(t, []string{"b", "d"}, l.Name())
					l.Done(nil, time.Millisecond)
				}
			})
			t.Run("backups only when no primary is usable", func(t *testing.T) {
				bs := append(backends("ab"), Backend[string]{Name: "z", Backup: true})
				b := newBalancer(t, Options[string]{Policy: p, Backends: bs})
				eject(t, b, "a")
				assert.NotEqual(t, "z", pickOne(t, b))
				eject(t, b, "b")
				assert.Equal(t, "z", pickOne(t, b))
			})
			t.Run("done is idempotent", func(t *testing.T) {
				b := newBalancer(t, Options[string]{Policy: p, Backends: backends("ab")})
				l, err := b.PickKey("k")
				require.NoError(t, err)
				copied := l
				l.Done(nil, time.Millisecond)
				l.Done(errors.New("late"), time.Millisecond)
				copied.Done(nil, time.Millisecond)
				for _, s := range b.Stats() {
					assert.Zero(t, s.Active, s.Name)
				}
				Lease[string]{}.Done(nil, 0) // the zero lease is inert
			})
			t.Run("removed backend's lease", func(t *testing.T) {
				b := newBalancer(t, Options[string]{Policy: p, Backends: backends("ab")})
				l := hold(t, b, "a")
				require.NoError(t, b.Remove("a"))
				l.Done(errors.New("boom"), time.Millisecond)
				assert.Equal(t, "b", pickOne(t, b))
			})
		})
	}
}

func pickOne(t testing.TB, b *Balancer[string]) string {
	t.Helper()
	l, err := b.PickKey("some-key")
	require.NoError(t, err)
	l.Done(nil, time.Millisecond)
	return l.Name()
}

// TestConcurrentPicksAndChanges runs picks, outcomes and membership changes at once; run it
// with -race. In-flight counts must come back to zero.
func TestConcurrentPicksAndChanges(t *testing.T) {
	for _, p := range Policies() {
		t.Run(p.String(), func(t *testing.T) {
			b := newBalancer(t, Options[string]{Policy: p, Backends: backends("abcdef", 1, 2, 3, 1, 2, 3),
				Passive: Passive{MaxFails: 3}, SlowStart: time.Second})
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for g := range 4 {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						l, err := b.PickKey(fmt.Sprint(g, i))
						if err != nil {
							continue
						}
						var outcome error
						if i%7 == 0 {
							outcome = errors.New("fail")
						}
						l.Done(outcome, time.Duration(i%50)*time.Microsecond)
					}
				})
			}
			for i := range 50 {
				name := fmt.Sprint("x", i%3)
				if err := b.Add(Backend[string]{Name: name, Weight: i % 4}); err != nil {
					require.NoError(t, b.Remove(name))
				}
				require.NoError(t, b.SetWeight("a", 1+i%5))
				require.NoError(t, b.Update(backends("abcdef", i%3+1)))
			}
			close(stop)
			wg.Wait()
			for _, s := range b.Stats() {
				assert.Zero(t, s.Active, s.Name)
			}
		})
	}
}

// TestRandomBitsBothHalves guards the two draws P2C takes from one random word: each half must
// cover the whole index range.
func TestRandomBitsBothHalves(t *testing.T) {
	b := newBalancer(t, Options[string]{Backends: backends("a")})
	var lo, hi [4]int
	for range 4000 {
		r := b.random()
		lo[below(r, 4)]++
		hi[below(r>>32, 4)]++
	}
	for i := range 4 {
		assert.Greater(t, lo[i], 800, "low half, quarter %d", i)
		assert.Greater(t, hi[i], 800, "high half, quarter %d", i)
	}
}
