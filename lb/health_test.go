package lb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errBackend = errors.New("backend failed")

// recorder collects health changes.
type recorder struct {
	mu      sync.Mutex
	changes []string
}

func (r *recorder) hook(c HealthChangeInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	state := "down"
	if c.Healthy {
		state = "up"
	}
	r.changes = append(r.changes, c.Backend+" "+state+" "+c.Reason.String())
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.changes
	r.changes = nil
	return out
}

func healthy(b *Balancer[string]) map[string]bool {
	out := map[string]bool{}
	for _, s := range b.Stats() {
		out[s.Name] = s.Healthy
	}
	return out
}

func TestPassiveHealth(t *testing.T) {
	type step struct {
		wait    time.Duration // sleep first (fake time)
		fails   int           // failures reported for a
		ok      int           // successes reported for a
		healthy bool          // a's health afterwards
		changes []string
	}
	tests := []struct {
		name    string
		passive Passive
		steps   []step
	}{
		{"max fails within the window eject, expiry readmits", Passive{MaxFails: 3, Window: 10 * time.Second, EjectFor: 30 * time.Second}, []step{
			{fails: 2, healthy: true},
			{fails: 1, healthy: false, changes: []string{"a down failures"}},
			{wait: 29 * time.Second, healthy: false},
			{wait: 2 * time.Second, healthy: true, changes: []string{"a up eject-expiry"}},
		}},
		{"failures spread over more than the window do not eject", Passive{MaxFails: 3, Window: 10 * time.Second}, []step{
			{fails: 2, healthy: true},
			{wait: 11 * time.Second, fails: 2, healthy: true},
			{wait: 5 * time.Second, fails: 1, healthy: false, changes: []string{"a down failures"}},
		}},
		{"successes do not reset the window (nginx)", Passive{MaxFails: 2}, []step{
			{fails: 1, ok: 5, healthy: true},
			{fails: 1, healthy: false, changes: []string{"a down failures"}},
			{wait: defaultEjectFor, healthy: true, changes: []string{"a up eject-expiry"}},
		}},
		{"disabled", Passive{MaxFails: -1}, []step{
			{fails: 100, healthy: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var rec recorder
				b := newBalancer(t, Options[string]{Backends: backends("ab"), Passive: tt.passive,
					Hooks: Hooks{OnHealthChange: rec.hook}})
				for i, s := range tt.steps {
					time.Sleep(s.wait)
					synctest.Wait()
					for range s.fails {
						hold(t, b, "a").Done(errBackend, time.Millisecond)
					}
					for range s.ok {
						hold(t, b, "a").Done(nil, time.Millisecond)
					}
					assert.Equal(t, s.healthy, healthy(b)["a"], "step %d", i)
					assert.Equal(t, s.changes, rec.take(), "step %d", i)
				}
			})
		})
	}
}

func TestCanceledIsNotAFailure(t *testing.T) {
	b := newBalancer(t, Options[string]{Backends: backends("ab"), Passive: Passive{MaxFails: 1}})
	hold(t, b, "a").Done(context.Canceled, 0)
	assert.True(t, healthy(b)["a"])
	hold(t, b, "a").Done(context.DeadlineExceeded, 0)
	assert.False(t, healthy(b)["a"])
}

func TestActiveHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		down := map[string]bool{"b": true}
		probes := 0
		probe := ProberFunc[string](func(ctx context.Context, v string) error {
			mu.Lock()
			defer mu.Unlock()
			probes++
			if down[v] {
				return errBackend
			}
			return nil
		})
		var rec recorder
		b, err := New(Options[string]{Backends: backends("abc"), Active: Active[string]{Probe: probe, Interval: 5 * time.Second, PassAfter: 2},
			Hooks: Hooks{OnHealthChange: rec.hook}})
		require.NoError(t, err)
		synctest.Wait() // the first round runs at once
		assert.Equal(t, map[string]bool{"a": true, "b": true, "c": true}, healthy(b), "values are va, vb, vc")

		mu.Lock()
		down = map[string]bool{"vb": true}
		mu.Unlock()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.Equal(t, map[string]bool{"a": true, "b": false, "c": true}, healthy(b))
		assert.Equal(t, []string{"b down probe-failed"}, rec.take())

		mu.Lock()
		down = nil
		mu.Unlock()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.False(t, healthy(b)["b"], "PassAfter 2 needs a second pass")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.True(t, healthy(b)["b"])
		assert.Equal(t, []string{"b up probe-passed"}, rec.take())

		b.Close() // stops the prober: synctest fails on a leaked goroutine
		mu.Lock()
		n := probes
		mu.Unlock()
		time.Sleep(time.Minute)
		mu.Lock()
		assert.Equal(t, n, probes, "no probes after Close")
		mu.Unlock()
	})
}

func TestProbePanicAndTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		probe := ProberFunc[string](func(ctx context.Context, v string) error {
			switch v {
			case "va":
				panic("probe bug")
			case "vb":
				<-ctx.Done() // hangs until the probe timeout
				return ctx.Err()
			}
			return nil
		})
		var mu sync.Mutex
		errs := map[string]error{}
		b := newBalancer(t, Options[string]{Backends: backends("abc"), Active: Active[string]{Probe: probe, Interval: time.Second},
			Hooks: Hooks{OnHealthChange: func(i HealthChangeInfo) {
				mu.Lock()
				defer mu.Unlock()
				errs[i.Backend] = i.Err
			}}})
		time.Sleep(time.Second / 2)
		synctest.Wait()
		assert.Equal(t, map[string]bool{"a": false, "b": false, "c": true}, healthy(b))
		mu.Lock()
		defer mu.Unlock()
		var pe *PanicError
		if assert.ErrorAs(t, errs["a"], &pe, "a panicking probe's error") {
			assert.Equal(t, "probe bug", pe.Value)
			assert.Contains(t, string(pe.Stack), "TestProbePanicAndTimeout", "the stack is the probe's")
			assert.EqualError(t, pe, "lb: probe panicked: probe bug")
		}
		assert.ErrorIs(t, errs["b"], context.DeadlineExceeded)
	})
}

func TestSlowStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBalancer(t, Options[string]{Backends: backends("ab"), SlowStart: 10 * time.Second,
			Passive: Passive{MaxFails: 1, EjectFor: time.Second}})
		factor := func() float64 {
			for _, s := range b.Stats() {
				if s.Name == "a" {
					return s.SlowFactor
				}
			}
			return -1
		}
		assert.Equal(t, 1.0, factor(), "initial backends start at full weight")
		hold(t, b, "a").Done(errBackend, 0)
		time.Sleep(time.Second)
		synctest.Wait()
		assert.InDelta(t, 0.1, factor(), 1e-6, "readmitted at a tenth")
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.InDelta(t, 0.55, factor(), 1e-6)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		assert.Equal(t, 1.0, factor())

		require.NoError(t, b.Add(Backend[string]{Name: "c", Value: "vc"}))
		var cs float64
		for _, s := range b.Stats() {
			if s.Name == "c" {
				cs = s.SlowFactor
			}
		}
		assert.InDelta(t, 0.1, cs, 1e-6, "added backends slow-start")
	})
}

func TestSlowStartShare(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, p := range []Policy{RoundRobin, WeightedRoundRobin, Random, LeastConnections, P2CLeastRequest} {
			b := newBalancer(t, Options[string]{Policy: p, Backends: backends("ab"), SlowStart: 10 * time.Second, Seed: 4})
			require.NoError(t, b.Add(Backend[string]{Name: "c", Value: "vc"}))
			counts := map[string]int{}
			for range 4000 {
				l, err := b.Pick()
				require.NoError(t, err)
				counts[l.Name()]++
				if p == LeastConnections || p == P2CLeastRequest {
					continue // hold leases: in-flight counts settle in proportion to effective weight
				}
				l.Done(nil, 0)
			}
			share := float64(counts["c"]) / 4000
			assert.Less(t, share, 0.12, "%v: c at a tenth of its weight gets ~1/21 of picks", p)
			assert.Greater(t, share, 0.01, "%v", p)
			b.Close()
		}
	})
}

func TestPanicThreshold(t *testing.T) {
	tests := []struct {
		name      string
		threshold float64
		down      []string
		want      []string // backends that may be picked
	}{
		{"half healthy is enough", 0, []string{"a", "b"}, []string{"c", "d"}},
		{"below half spreads over all", 0, []string{"a", "b", "c"}, []string{"a", "b", "c", "d"}},
		{"disabled", -1, []string{"a", "b", "c"}, []string{"d"}},
		{"custom", 0.8, []string{"a"}, []string{"a", "b", "c", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBalancer(t, Options[string]{Backends: backends("abcd"), PanicThreshold: tt.threshold})
			for _, n := range tt.down {
				eject(t, b, n)
			}
			seen := map[string]bool{}
			for range 40 {
				seen[pickOne(t, b)] = true
			}
			var got []string
			for _, n := range []string{"a", "b", "c", "d"} {
				if seen[n] {
					got = append(got, n)
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLoggerReportsHealthChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf safeBuffer
		b := newBalancer(t, Options[string]{Backends: backends("ab"), Passive: Passive{MaxFails: 1, EjectFor: time.Second},
			Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		hold(t, b, "a").Done(errBackend, 0)
		time.Sleep(time.Second)
		synctest.Wait()
		out := buf.String()
		assert.Contains(t, out, `level=WARN msg="lb: backend out of rotation" backend=a reason=failures err="backend failed"`)
		assert.Contains(t, out, `level=INFO msg="lb: backend back in rotation" backend=a reason=eject-expiry`)
	})
}

// safeBuffer is a bytes.Buffer for writers on several goroutines.
type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// TestStatsSayWhyABackendIsOut checks that Stats tells passive ejection, failed probes and an
// availability check apart, alone and together.
func TestStatsSayWhyABackendIsOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		probeDown, open := false, false
		b, err := New(Options[string]{
			Backends: []Backend[string]{{Name: "a", Value: "va", Check: AvailabilityFunc(func() bool {
				mu.Lock()
				defer mu.Unlock()
				return !open
			})}, {Name: "b", Value: "vb"}},
			Passive: Passive{MaxFails: 1, EjectFor: time.Hour},
			Active: Active[string]{Interval: time.Second, Probe: ProberFunc[string](func(_ context.Context, v string) error {
				mu.Lock()
				defer mu.Unlock()
				if probeDown && v == "va" {
					return errBackend
				}
				return nil
			})},
		})
		require.NoError(t, err)
		defer b.Close()
		set := func(probe, breakerOpen bool) {
			mu.Lock()
			probeDown, open = probe, breakerOpen
			mu.Unlock()
			time.Sleep(time.Second)
			synctest.Wait()
		}
		type why struct{ healthy, ejected, probeDown, available bool }
		of := func() why {
			s := b.Stats()[0]
			return why{s.Healthy, s.Ejected, s.ProbeDown, s.Available}
		}
		synctest.Wait()
		assert.Equal(t, why{true, false, false, true}, of(), "in rotation")
		set(false, true)
		assert.Equal(t, why{true, false, false, false}, of(), "availability check says no")
		set(true, false)
		assert.Equal(t, why{false, false, true, true}, of(), "probe failed")
		hold(t, b, "a").Done(errBackend, time.Millisecond)
		assert.Equal(t, why{false, true, true, true}, of(), "probe failed and ejected")
		set(false, false)
		assert.Equal(t, why{false, true, false, true}, of(), "still ejected after the probe passed")
	})
}

func TestEjectLimit(t *testing.T) {
	tests := []struct {
		f        float64
		n, limit int
	}{
		{0.5, 1, 0}, // a lone backend is never ejected below f = 1
		{0.5, 2, 1},
		{0.5, 3, 1},
		{0.5, 10, 5},
		{0.1, 3, 1}, // at least one
		{0.99, 4, 3},
		{1, 1, 1},
		{1, 3, 3},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.limit, ejectLimit(tt.f, tt.n), "f %v, n %d", tt.f, tt.n)
	}
}

// TestEjectionCap: passive health stops at Passive.MaxEjected; a backend that reaches MaxFails
// over the cap stays in rotation, and one is ejected again once another comes back.
func TestEjectionCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec recorder
		b := newBalancer(t, Options[string]{Backends: backends("abcd"), Passive: Passive{MaxFails: 1, EjectFor: time.Second},
			Hooks: Hooks{OnHealthChange: rec.hook}})
		for _, n := range []string{"a", "b", "c", "d"} {
			hold(t, b, n).Done(errBackend, time.Millisecond)
		}
		assert.Equal(t, []string{"a down failures", "b down failures"}, rec.take(), "half of four")
		assert.Equal(t, map[string]bool{"a": false, "b": false, "c": true, "d": true}, healthy(b))
		time.Sleep(time.Second)
		synctest.Wait()
		assert.ElementsMatch(t, []string{"a up eject-expiry", "b up eject-expiry"}, rec.take())
		hold(t, b, "c").Done(errBackend, time.Millisecond)
		assert.Equal(t, []string{"c down failures"}, rec.take())
	})
}

// TestRandomErrorsWithoutCap: with the cap lifted, random errors can eject every backend; panic
// mode then keeps serving from all of them, and FailClosed fails those picks instead.
func TestRandomErrorsWithoutCap(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for _, fc := range []bool{false, true} {
		t.Run(fmt.Sprint("FailClosed=", fc), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				noBackend, picks, maxEjected := randomErrorRun(t, Options[string]{Backends: backends("abc"),
					Passive: Passive{MaxEjected: 1}, FailClosed: fc}, seed, 0.01, errorRunFor)
				t.Logf("%d of %d picks failed with ErrNoBackend; at most %d of 3 ejected at once", noBackend, picks, maxEjected)
				require.Equal(t, 3, maxEjected, "seed %d", seed)
				if fc {
					assert.Positive(t, noBackend)
				} else {
					assert.Zero(t, noBackend, "seed %d", seed)
				}
			})
		})
	}
}
