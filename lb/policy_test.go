package lb

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// backends returns backends named by the letters of names, with the given weights (missing
// weights are 1).
func backends(names string, weights ...int) []Backend[string] {
	out := make([]Backend[string], len(names))
	for i, r := range names {
		out[i] = Backend[string]{Name: string(r), Value: "v" + string(r), Weight: 1}
		if i < len(weights) {
			out[i].Weight = weights[i]
		}
	}
	return out
}

func newBalancer(t testing.TB, opts Options[string]) *Balancer[string] {
	t.Helper()
	b, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// sequence picks n times, ending each lease at once, and returns the names joined.
func sequence(t testing.TB, b *Balancer[string], n int) string {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		l, err := b.Pick()
		require.NoError(t, err)
		names[i] = l.Name()
		l.Done(nil, time.Millisecond)
	}
	return strings.Join(names, " ")
}

func TestExactSequences(t *testing.T) {
	tests := []struct {
		name string
		opts Options[string]
		n    int
		want string
	}{
		{"round robin", Options[string]{Backends: backends("abc")}, 7, "a b c a b c a"},
		{"round robin ignores weights", Options[string]{Backends: backends("ab", 5, 1)}, 4, "a b a b"},
		{"swrr 5 1 1 (nginx)", Options[string]{Policy: WeightedRoundRobin, Backends: backends("abc", 5, 1, 1)}, 14, "a a b a c a a a a b a c a a"},
		{"swrr 2 1", Options[string]{Policy: WeightedRoundRobin, Backends: backends("ab", 2, 1)}, 6, "a b a a b a"},
		{"swrr reduces by gcd", Options[string]{Policy: WeightedRoundRobin, Backends: backends("ab", 40, 20)}, 6, "a b a a b a"},
		{"swrr equal weights is round robin", Options[string]{Policy: WeightedRoundRobin, Backends: backends("abc")}, 6, "a b c a b c"},
		{"backups wait while primaries serve", Options[string]{Backends: append(backends("ab"), Backend[string]{Name: "z", Backup: true})}, 4, "a b a b"},
		{"single backend", Options[string]{Policy: P2CPeakEWMA, Backends: backends("a")}, 3, "a a a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBalancer(t, tt.opts)
			assert.Equal(t, tt.want, sequence(t, b, tt.n))
		})
	}
}

// TestFairness checks each policy's long-run shares.
func TestFairness(t *testing.T) {
	const n = 30_000
	tests := []struct {
		policy  Policy
		weights []int
		want    []float64 // expected shares
		slack   float64
	}{
		{RoundRobin, []int{1, 1, 1}, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}, 0},
		{WeightedRoundRobin, []int{5, 1, 1}, []float64{5.0 / 7, 1.0 / 7, 1.0 / 7}, 0.001},
		{Random, []int{1, 1, 1}, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}, 0.02},
		{Random, []int{3, 1}, []float64{0.75, 0.25}, 0.02},
		{LeastConnections, []int{1, 1, 1}, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}, 0.02},
		{P2CLeastRequest, []int{1, 1, 1}, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}, 0.02},
		{P2CPeakEWMA, []int{1, 1, 1}, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}, 0.05},
		{ConsistentHash, []int{1, 1, 1}, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}, 0.02},
		{ConsistentHash, []int{3, 1}, []float64{0.75, 0.25}, 0.02},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v %v", tt.policy, tt.weights), func(t *testing.T) {
			b := newBalancer(t, Options[string]{Policy: tt.policy, Backends: backends("abc"[:len(tt.weights)], tt.weights...), Seed: 1})
			counts := map[string]int{}
			for i := range n {
				l, err := b.PickKey(fmt.Sprint("key-", i))
				require.NoError(t, err)
				counts[l.Name()]++
				l.Done(nil, time.Millisecond)
			}
			for i, share := range tt.want {
				got := float64(counts[string(rune('a'+i))]) / n
				assert.InDelta(t, share, got, tt.slack, "backend %c", 'a'+i)
			}
		})
	}
}

func TestLeastRequestAvoidsBusyBackend(t *testing.T) {
	for _, p := range []Policy{LeastConnections, P2CLeastRequest, P2CPeakEWMA} {
		t.Run(p.String(), func(t *testing.T) {
			b := newBalancer(t, Options[string]{Policy: p, Backends: backends("ab"), Seed: 3})
			var held []Lease[string]
			for range 5 { // load a with requests in flight
				held = append(held, hold(t, b, "a"))
			}
			for range 20 {
				l, err := b.Pick()
				require.NoError(t, err)
				assert.Equal(t, "b", l.Name())
				l.Done(nil, time.Millisecond)
			}
			for _, l := range held {
				l.Done(nil, time.Millisecond)
			}
		})
	}
}

// hold leases the named backend directly, whatever the policy would choose.
func hold(t testing.TB, b *Balancer[string], name string) Lease[string] {
	t.Helper()
	m := b.snap.Load().byName[name]
	require.NotNil(t, m)
	m.st.acquire()
	return b.lease(m)
}

// pickNamed picks until it gets name and ends the other leases.
func pickNamed(t testing.TB, b *Balancer[string], name string) Lease[string] {
	t.Helper()
	for range 1000 {
		l, err := b.Pick()
		require.NoError(t, err)
		if l.Name() == name {
			return l
		}
		l.Done(nil, 0)
	}
	t.Fatalf("never picked %s", name)
	return Lease[string]{}
}

func TestLeastConnectionsWeights(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: LeastConnections, Backends: backends("ab", 3, 1)})
	counts := map[string]int{}
	for range 8 { // hold every lease: in-flight counts settle at 3:1
		l, err := b.Pick()
		require.NoError(t, err)
		counts[l.Name()]++
	}
	assert.Equal(t, map[string]int{"a": 6, "b": 2}, counts)
}

func TestPeakEWMAPrefersFastBackend(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: P2CPeakEWMA, Backends: backends("ab"), Seed: 9})
	pickNamed(t, b, "a").Done(nil, 100*time.Millisecond)
	pickNamed(t, b, "b").Done(nil, 10*time.Millisecond)
	for range 10 {
		l, err := b.Pick()
		require.NoError(t, err)
		assert.Equal(t, "b", l.Name())
		l.Done(nil, 10*time.Millisecond)
	}
	// With every response going to b, a's estimate decays until a is tried again.
	tried := false
	for range 500 {
		l, err := b.Pick()
		require.NoError(t, err)
		tried = tried || l.Name() == "a"
		l.Done(nil, 10*time.Millisecond)
	}
	assert.True(t, tried, "a slow backend is retried once its estimate decays")
}

func TestPeakEWMANewBackendTakesOneAtATime(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: P2CPeakEWMA, Backends: backends("ab"), Seed: 5})
	pickNamed(t, b, "a").Done(nil, 10*time.Millisecond)
	// b has no latency yet: it wins while idle, loses once it has a request out.
	first := pickNamed(t, b, "b")
	for range 10 {
		l, err := b.Pick()
		require.NoError(t, err)
		assert.Equal(t, "a", l.Name())
		l.Done(nil, 10*time.Millisecond)
	}
	first.Done(nil, 10*time.Millisecond)
}

func TestConsistentHash(t *testing.T) {
	owner := map[string]string{"alice": "b", "bob": "c"}
	b := newBalancer(t, Options[string]{Policy: ConsistentHash, Backends: backends("abc"),
		Placement: func(key string) string { return owner[key] }, PanicThreshold: -1})
	pickKey := func(key string) string {
		l, err := b.PickKey(key)
		require.NoError(t, err)
		defer l.Done(nil, 0)
		return l.Name()
	}
	assert.Equal(t, "b", pickKey("alice"))
	assert.Equal(t, "c", pickKey("bob"))
	unplaced := pickKey("carol") // unknown to the placement: rendezvous decides, stably
	for range 5 {
		assert.Equal(t, unplaced, pickKey("carol"))
	}

	require.NoError(t, b.SetWeight("b", 1)) // membership change keeps placement
	eject(t, b, "b")
	moved := pickKey("alice")
	assert.NotEqual(t, "b", moved)
	assert.Equal(t, moved, pickKey("alice"), "fallback is stable")
}

// eject marks a backend down as passive health would.
func eject(t testing.TB, b *Balancer[string], name string) {
	t.Helper()
	m := b.snap.Load().byName[name]
	require.NotNil(t, m)
	b.mu.Lock()
	change, changed := b.setHealthLocked(m.st, m.st.health.Load()|downProbe, ReasonProbeFailed, nil)
	b.mu.Unlock()
	b.emit(change, changed)
}

func TestRemovalMovesOnlyTheLostBackendsKeys(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: ConsistentHash, Backends: backends("abcde"), PanicThreshold: -1})
	before := map[string]string{}
	for i := range 2000 {
		k := fmt.Sprint("k", i)
		l, err := b.PickKey(k)
		require.NoError(t, err)
		before[k] = l.Name()
		l.Done(nil, 0)
	}
	require.NoError(t, b.Remove("c"))
	for k, was := range before {
		l, err := b.PickKey(k)
		require.NoError(t, err)
		if was != "c" {
			assert.Equal(t, was, l.Name(), "key %s moved between surviving backends", k)
		}
		l.Done(nil, 0)
	}
}
