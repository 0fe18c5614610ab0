package lb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestForgottenLeaseIsReclaimed(t *testing.T) {
	var leaked atomic.Int64
	b := newBalancer(t, Options[string]{Policy: LeastConnections, Backends: backends("a"),
		Hooks: Hooks{OnLeak: func(LeakInfo) { leaked.Add(1) }}})
	func() {
		for range 10 {
			_, err := b.Pick() // dropped without Done
			require.NoError(t, err)
		}
	}()
	for i := 0; i < 1000 && leaked.Load() < 10; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	assert.Equal(t, int64(10), leaked.Load())
	assert.Zero(t, b.Stats()[0].Active)
}

func TestDoneLeaseIsNotReportedAsLeak(t *testing.T) {
	var leaked atomic.Int64
	b := newBalancer(t, Options[string]{Backends: backends("a"), Hooks: Hooks{OnLeak: func(LeakInfo) { leaked.Add(1) }}})
	for range 100 {
		l, err := b.Pick()
		require.NoError(t, err)
		l.Done(nil, 0)
	}
	for range 5 {
		runtime.GC()
		runtime.Gosched()
	}
	assert.Zero(t, leaked.Load())
}

func TestDo(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: P2CPeakEWMA, Backends: backends("a"),
		Passive: Passive{MaxFails: 1, MaxEjected: 1}, FailClosed: true})
	var got string
	require.NoError(t, b.Do(context.Background(), func(ctx context.Context, v string) error {
		got = v
		return nil
	}))
	assert.Equal(t, "va", got)

	assert.PanicsWithValue(t, "boom", func() {
		_ = b.Do(context.Background(), func(context.Context, string) error { panic("boom") })
	})
	st := b.Stats()[0]
	assert.Zero(t, st.Active, "a panic releases the lease")
	assert.True(t, st.Healthy, "a panic does not count against the backend")

	assert.Error(t, b.Do(context.Background(), nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, b.Do(ctx, func(context.Context, string) error { return nil }), context.Canceled)

	err := b.DoKey(context.Background(), "k", func(context.Context, string) error { return errBackend })
	assert.ErrorIs(t, err, errBackend)
	assert.False(t, b.Stats()[0].Healthy)
	assert.ErrorIs(t, b.Do(context.Background(), func(context.Context, string) error { return nil }), ErrNoBackend)
}

func TestIsFailureOption(t *testing.T) {
	notMine := errors.New("client error")
	b := newBalancer(t, Options[string]{Backends: backends("ab"), Passive: Passive{MaxFails: 1},
		IsFailure: func(err error) bool { return !errors.Is(err, notMine) }})
	hold(t, b, "a").Done(notMine, time.Millisecond)
	assert.True(t, healthy(b)["a"])
	hold(t, b, "a").Done(errBackend, time.Millisecond)
	assert.False(t, healthy(b)["a"])
}

func TestExpNeg(t *testing.T) {
	for _, x := range []float64{0, 0.01, 0.05, 0.1, 0.249, 0.25, 0.5, 0.9, 0.999, 1, 3, 40} {
		assert.InEpsilon(t, math.Exp(-x), expNeg(x), 1e-4, "x=%v", x)
	}
}

func TestLeaseModes(t *testing.T) {
	for _, untracked := range []bool{false, true} {
		t.Run(fmt.Sprintf("untracked=%v", untracked), func(t *testing.T) {
			b := newBalancer(t, Options[string]{Policy: P2CPeakEWMA, Backends: backends("ab"), UntrackedLeases: untracked})
			var ls []Lease[string]
			for range 6 {
				l, err := b.Pick()
				require.NoError(t, err)
				ls = append(ls, l)
			}
			active := func() (n int64) {
				for _, s := range b.Stats() {
					n += s.Active
				}
				return n
			}
			assert.Equal(t, int64(6), active())
			for _, l := range ls {
				l.Done(nil, time.Millisecond)
			}
			assert.Zero(t, active())
			if !untracked {
				for _, l := range ls {
					l.Done(nil, time.Millisecond) // copies of ended leases: no effect
				}
				assert.Zero(t, active())
			}
			Lease[string]{}.Done(nil, 0) // the zero lease: no effect, no panic
			assert.Zero(t, active())
		})
	}
}

// TestP2CAgesRelatively checks that the P2C comparison, which ages only the gap between two
// estimates' updates, chooses as comparing both estimates fully aged would.
func TestP2CAgesRelatively(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: P2CPeakEWMA, Backends: backends("xy"), Seed: 7})
	s := b.snap.Load()
	x, y := s.byName["x"], s.byName["y"]
	rng := rand.New(rand.NewPCG(1, 2))
	checked := 0
	for range 2000 {
		seen := uint64(1)<<32 - 50 + rng.Uint64N(100) // across the 32-bit wrap
		b.seen.Store(seen)
		for _, m := range []*member[string]{x, y} {
			m.st.active.Store(int64(rng.IntN(4)))
			lat := 0.0
			if rng.IntN(5) > 0 {
				lat = float64(1 + rng.IntN(1e6))
			}
			m.st.latency.Store(packLatency(lat, uint32(seen-rng.Uint64N(60))))
		}
		full := func(m *member[string]) float64 {
			a := float64(m.st.active.Load())
			lat := b.decayed(m.st, seen, s.aging)
			switch {
			case lat > 0:
				return (a + 1) * lat
			case a > 0:
				return 1e300 * (1 - 1/(a+1))
			}
			return 0
		}
		fx, fy := full(x), full(y)
		if math.Abs(fx-fy) <= 3e-4*math.Max(fx, fy) { // ageFactor is within 2e-4
			continue // a tie either way
		}
		want := "x"
		if fy < fx {
			want = "y"
		}
		got := b.pickP2C(&s.primary, false, false, nil)
		require.Equal(t, want, got.name, "x=%v y=%v", fx, fy)
		checked++
	}
	assert.Greater(t, checked, 1500)
}

func TestAgeFactor(t *testing.T) {
	for _, x := range []float64{0, 0.01, 0.1, 0.249, 0.25, 0.9, 3} {
		assert.InEpsilon(t, math.Exp(-x), ageFactor(x), 3e-4, "x=%v", x)
	}
}

// TestLeakAmongParkedHandles mixes ended and forgotten leases over backends whose Done parks
// handles for reuse: every forgotten lease, and only those, is reclaimed.
func TestLeakAmongParkedHandles(t *testing.T) {
	var leaked atomic.Int64
	b := newBalancer(t, Options[string]{Policy: P2CLeastRequest, Backends: backends("abc"),
		Hooks: Hooks{OnLeak: func(LeakInfo) { leaked.Add(1) }}})
	func() {
		for i := range 300 {
			l, err := b.Pick()
			require.NoError(t, err)
			if i%3 != 0 {
				l.Done(nil, time.Millisecond)
				l.Done(nil, time.Millisecond) // a second Done does nothing
			}
		}
	}()
	for i := 0; i < 1000 && leaked.Load() < 100; i++ {
		runtime.GC()
		runtime.Gosched()
	}
	assert.Equal(t, int64(100), leaked.Load())
	for _, s := range b.Stats() {
		assert.Zero(t, s.Active, s.Name)
	}
}

func TestAgeTable(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: P2CPeakEWMA, Backends: backends("xyz")})
	s := b.snap.Load()
	for d, f := range s.ageTab {
		assert.InEpsilon(t, ageFactor(float64(d)*s.aging), f, 3e-4, "d=%d", d)
	}
}

func TestOnDone(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name     string
		maxFails int
		err      error
		latency  time.Duration
		failure  bool
	}{
		{"success", 0, nil, time.Millisecond, false},
		{"failure", 0, boom, 2 * time.Millisecond, true},
		{"canceled is no failure", 0, context.Canceled, 0, false},
		{"failure with passive health off", -1, boom, time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []DoneInfo
			b := newBalancer(t, Options[string]{Backends: backends("a"), Passive: Passive{MaxFails: tt.maxFails},
				Hooks: Hooks{OnDone: func(i DoneInfo) { got = append(got, i) }}})
			l, err := b.Pick()
			require.NoError(t, err)
			l.Done(tt.err, tt.latency)
			l.Done(tt.err, tt.latency) // a tracked lease ends once
			assert.Equal(t, []DoneInfo{{Backend: "a", Err: tt.err, Latency: tt.latency, Failure: tt.failure}}, got)
		})
	}
}
