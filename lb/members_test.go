package lb

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMembership(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: WeightedRoundRobin, Backends: backends("ab")})
	assert.Equal(t, "a b a b", sequence(t, b, 4))

	require.NoError(t, b.Add(Backend[string]{Name: "c", Value: "vc", Weight: 2}))
	assert.ErrorIs(t, b.Add(Backend[string]{Name: "c"}), ErrDuplicate)
	assert.Error(t, b.Add(Backend[string]{Name: "d", Weight: MaxWeight + 1}))
	assert.Equal(t, 3, b.Len())

	require.NoError(t, b.SetWeight("a", 3))
	assert.ErrorIs(t, b.SetWeight("zz", 1), ErrUnknownBackend)
	assert.Error(t, b.SetWeight("a", -1))
	counts := map[string]int{}
	for _, n := range strings.Fields(sequence(t, b, 60)) {
		counts[n]++
	}
	assert.Equal(t, map[string]int{"a": 30, "b": 10, "c": 20}, counts)

	require.NoError(t, b.Remove("a"))
	assert.ErrorIs(t, b.Remove("a"), ErrUnknownBackend)
	assert.NotContains(t, sequence(t, b, 9), "a")
}

func TestUpdateKeepsState(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: P2CPeakEWMA, Backends: backends("abc")})
	held := hold(t, b, "b")
	hold(t, b, "a").Done(nil, 50*time.Millisecond)
	eject(t, b, "c")

	require.NoError(t, b.Update([]Backend[string]{
		{Name: "a", Value: "new-a", Weight: 2},
		{Name: "b", Value: "new-b"},
		{Name: "c", Value: "new-c", Backup: true},
		{Name: "d", Value: "vd"},
	}))
	stats := map[string]Stats{}
	for _, s := range b.Stats() {
		stats[s.Name] = s
	}
	assert.Len(t, stats, 4)
	assert.Equal(t, int64(1), stats["b"].Active, "in-flight count survives")
	assert.Equal(t, 2, stats["a"].Weight)
	assert.Greater(t, stats["a"].Latency, time.Duration(0), "latency survives")
	assert.False(t, stats["c"].Healthy, "health survives")
	assert.True(t, stats["c"].Backup)
	held.Done(nil, 0)
	assert.Equal(t, int64(0), b.Stats()[1].Active, "the old lease ends on the kept state")

	l := hold(t, b, "a")
	assert.Equal(t, "new-a", l.Backend(), "the value is replaced")
	l.Done(nil, 0)

	require.NoError(t, b.Update(backends("a")))
	assert.Equal(t, 1, b.Len())
	assert.Error(t, b.Update([]Backend[string]{{Name: "x"}, {Name: "x"}}))
}

func TestSWRRCycleScalesHugeWeights(t *testing.T) {
	bs := make([]Backend[string], 2000)
	for i := range bs {
		bs[i] = Backend[string]{Name: string(rune(0x4e00 + i)), Weight: MaxWeight - i}
	}
	b := newBalancer(t, Options[string]{Policy: WeightedRoundRobin, Backends: bs})
	cycle := b.snap.Load().primary.swrr
	assert.LessOrEqual(t, len(cycle), maxSWRRWork/2000+2000)
	seen := map[uint32]bool{}
	for _, i := range cycle {
		seen[i] = true
	}
	assert.Len(t, seen, 2000, "every backend keeps a slot")
}

func TestValueWithAvailableMethod(t *testing.T) {
	gate := &gateBackend{open: true}
	b, err := New(Options[*gateBackend]{Backends: []Backend[*gateBackend]{{Name: "g", Value: gate}}})
	require.NoError(t, err)
	defer b.Close()
	_, err = b.Pick()
	require.NoError(t, err)
	gate.open = false
	_, err = b.Pick()
	assert.ErrorIs(t, err, ErrNoBackend)
}

type gateBackend struct{ open bool }

func (g *gateBackend) Available() bool { return g.open }

func TestNilBalancer(t *testing.T) {
	var b *Balancer[string]
	_, err := b.Pick()
	assert.ErrorIs(t, err, ErrNoBackend)
	b.Close()
	assert.Nil(t, b.Stats())
	assert.Zero(t, b.Len())
	var l Lease[string]
	assert.Equal(t, "", l.Backend())
	assert.Equal(t, "", l.Name())
}

func TestAliasTable(t *testing.T) {
	w := []float64{5, 1, 1, 3, 0.5}
	coin, alias := aliasTable(w)
	got := make([]float64, len(w))
	for i := range w { // exact probabilities: slot i kept with coin[i]/2^32, else its alias
		keep := float64(coin[i]) / (1 << 32)
		got[i] += keep / float64(len(w))
		got[alias[i]] += (1 - keep) / float64(len(w))
	}
	for i, x := range w {
		assert.InDelta(t, x/10.5, got[i], 1e-6, "slot %d", i)
	}
}

func TestNilBalancerMembership(t *testing.T) {
	var b *Balancer[string]
	assert.Error(t, b.Add(Backend[string]{Name: "a"}))
	assert.Error(t, b.Remove("a"))
	assert.Error(t, b.SetWeight("a", 1))
	assert.Error(t, b.Update(nil))
}
