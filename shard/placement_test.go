package shard

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// placementCase describes one placement for the contract suite.
type placementCase struct {
	name string
	new  func(t testing.TB) Placement[string]
	// maxRatio bounds max/mean load with 10 nodes at the defaults.
	maxRatio float64
	// stray bounds the fraction of keys that may move between nodes present before and after a
	// change: 0 for all but Maglev, whose table shifts a little.
	stray float64
	// middleErr is what removing a node other than the newest returns: ErrNotLast for jump hash.
	middleErr error
	// ordered: placement depends on the order nodes joined (jump hash numbers them).
	ordered bool
	// failover: the placement promises that LocateN's order is the failover order.
	failover bool
	// maxSecond bounds, for a placement without failover order, the share of a removed owner's
	// keys that go to LocateN's second node (Maglev's doc quotes it); 0 means unchecked.
	maxSecond float64
}

func placementCases() []placementCase {
	return []placementCase{
		{name: "ring", maxRatio: 1.05, failover: true, new: func(t testing.TB) Placement[string] {
			r, err := NewRing(RingOptions[string]{})
			require.NoError(t, err)
			return r
		}},
		{name: "jump", maxRatio: 1.01, middleErr: ErrNotLast, ordered: true, failover: true, new: func(t testing.TB) Placement[string] {
			j, err := NewJump(JumpOptions[string]{})
			require.NoError(t, err)
			return j
		}},
		{name: "maglev", maxRatio: 1.02, stray: 0.02, maxSecond: 0.2, new: func(t testing.TB) Placement[string] {
			g, err := NewMaglev(MaglevOptions[string]{})
			require.NoError(t, err)
			return g
		}},
		{name: "rendezvous", maxRatio: 1.02, failover: true, new: func(t testing.TB) Placement[string] {
			r, err := NewRendezvous(RendezvousOptions[string]{})
			require.NoError(t, err)
			return r
		}},
		// With no leases held, Bounded places keys as its ring does.
		{name: "bounded", maxRatio: 1.05, new: func(t testing.TB) Placement[string] {
			b, err := NewBounded(BoundedOptions[string]{})
			require.NoError(t, err)
			return b
		}},
	}
}

var testKeys = sync.OnceValue(func() []string {
	keys := make([]string, propertyKeys)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	return keys
})

func nodeNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// owners returns every key's owner.
func owners(t testing.TB, p Placement[string], keys []string) []string {
	t.Helper()
	out := make([]string, len(keys))
	for i, k := range keys {
		n, err := p.Locate(k)
		if err != nil {
			t.Fatalf("Locate(%q): %v", k, err)
		}
		out[i] = n
	}
	return out
}

// maxOverMean returns the most loaded node's keys over the mean.
func maxOverMean(owned []string, nodes int) float64 {
	count := map[string]int{}
	for _, o := range owned {
		count[o]++
	}
	most := 0
	for _, c := range count {
		most = max(most, c)
	}
	return float64(most) * float64(nodes) / float64(len(owned))
}

// movement counts keys whose owner changed, and among them those that moved between two nodes
// other than changed (the node added or removed).
func movement(before, after []string, changed string) (moved, stray int) {
	for i := range before {
		if before[i] != after[i] {
			moved++
			if before[i] != changed && after[i] != changed {
				stray++
			}
		}
	}
	return moved, stray
}

// TestPlacementContract runs every placement through the same properties and logs the measured
// balance and movement figures.
func TestPlacementContract(t *testing.T) {
	keys := testKeys()
	for _, tc := range placementCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("empty", func(t *testing.T) {
				p := tc.new(t)
				_, err := p.Locate("k")
				require.ErrorIs(t, err, ErrNoNodes)
				_, err = p.LocateN(nil, "k", 3)
				require.ErrorIs(t, err, ErrNoNodes)
				require.Empty(t, p.Nodes())
			})
			t.Run("membership errors", func(t *testing.T) {
				p := tc.new(t)
				require.NoError(t, p.Add("a", "b"))
				err := p.Add("c", "a", "c")
				require.ErrorIs(t, err, ErrDuplicateNode)
				var ne *NodeError
				require.ErrorAs(t, err, &ne)
				assert.Equal(t, "a", ne.Node)
				assert.Contains(t, err.Error(), `shard: duplicate node: "a"`)
				require.ErrorIs(t, p.Remove("zz"), ErrUnknownNode)
				require.ErrorIs(t, p.Remove("b", "b"), ErrUnknownNode)
				assert.ElementsMatch(t, []string{"a", "b"}, p.Nodes(), "a refused change changes nothing")
			})
			t.Run("LocateN", func(t *testing.T) { checkLocateN(t, tc.new(t)) })
			t.Run("lookups allocate nothing", func(t *testing.T) {
				p := tc.new(t)
				require.NoError(t, p.Add(nodeNames("n", 10)...))
				buf := make([]string, 0, 3)
				assert.Zero(t, testing.AllocsPerRun(100, func() {
					p.Locate("user:1")
					p.LocateN(buf[:0], "user:2", 3)
				}))
			})
			t.Run("order of joining", func(t *testing.T) {
				a, b := tc.new(t), tc.new(t)
				names := nodeNames("n", 6)
				require.NoError(t, a.Add(names...))
				for _, n := range slices.Backward(names) {
					require.NoError(t, b.Add(n))
				}
				same := slices.Equal(owners(t, a, keys[:5000]), owners(t, b, keys[:5000]))
				assert.Equal(t, !tc.ordered, same)
			})
			t.Run("balance and movement", func(t *testing.T) { checkMovement(t, tc, tc.new(t)) })
			t.Run("failover order", func(t *testing.T) { checkFailover(t, tc, tc.new(t)) })
			t.Run("concurrent lookups during changes", func(t *testing.T) { checkConcurrentLookups(t, tc.new(t)) })
		})
	}
}

// checkLocateN checks that LocateN returns distinct nodes, the owner first, each node once when
// asked for more than there are, and none when asked for none.
func checkLocateN(t *testing.T, p Placement[string]) {
	keys := testKeys()
	require.NoError(t, p.Add(nodeNames("n", 7)...))
	buf := make([]string, 0, 8)
	for _, k := range keys[:2000] {
		one, err := p.Locate(k)
		require.NoError(t, err)
		got, err := p.LocateN(buf[:0], k, 3)
		require.NoError(t, err)
		require.Len(t, got, 3)
		assert.Equal(t, one, got[0], "the first of LocateN is the owner")
		assert.Len(t, uniq(got), 3, "LocateN returns distinct nodes: %v", got)
	}
	all, err := p.LocateN(nil, "x", 100)
	require.NoError(t, err)
	assert.ElementsMatch(t, p.Nodes(), all, "asking for more nodes than exist returns each once")
	none, err := p.LocateN(nil, "x", 0)
	require.NoError(t, err)
	assert.Empty(t, none)
}

// checkConcurrentLookups looks keys up from several goroutines while nodes join and leave; the
// race detector checks that lookups need no lock.
func checkConcurrentLookups(t *testing.T, p Placement[string]) {
	keys := testKeys()
	require.NoError(t, p.Add(nodeNames("n", 4)...))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			buf := make([]string, 0, 2)
			for i := range 300 {
				k := keys[g*1000+i]
				n, err := p.Locate(k)
				assert.NoError(t, err)
				assert.NotEmpty(t, n)
				_, err = p.LocateN(buf[:0], k, 2)
				assert.NoError(t, err)
			}
		})
	}
	for i := range 5 {
		require.NoError(t, p.Add(fmt.Sprintf("extra-%d", i)))
	}
	for i := range slices.Backward(make([]int, 5)) {
		require.NoError(t, p.Remove(fmt.Sprintf("extra-%d", i)))
	}
	wg.Wait()
}

// checkMovement checks balance with 10 nodes and which keys move when an 11th joins and leaves
// and when a node in the middle leaves, and logs the figures.
func checkMovement(t *testing.T, tc placementCase, p Placement[string]) {
	keys := testKeys()
	names := nodeNames("cache", 10)
	require.NoError(t, p.Add(names...))
	before := owners(t, p, keys)
	ratio := maxOverMean(before, 10)
	assert.LessOrEqual(t, ratio, tc.maxRatio, "max/mean with 10 nodes")

	require.NoError(t, p.Add("cache-10"))
	added := owners(t, p, keys)
	movedAdd, strayAdd := movement(before, added, "cache-10")
	ideal := 1.0 / 11
	addFrac := float64(movedAdd) / float64(len(keys))
	assert.InDelta(t, ideal, addFrac, 0.01, "adding a node moves about 1/(n+1) of the keys")
	assert.LessOrEqual(t, float64(strayAdd)/float64(len(keys)), tc.stray, "keys moved between surviving nodes on add")

	// Remove the node just added (the only one jump hash can remove): every key it held
	// moves, the others stay (but for Maglev's stray few), so the placement is restored.
	require.NoError(t, p.Remove("cache-10"))
	removed := owners(t, p, keys)
	movedDel, strayDel := movement(added, removed, "cache-10")
	assert.LessOrEqual(t, float64(strayDel)/float64(len(keys)), tc.stray, "keys moved between surviving nodes on remove")
	assert.Equal(t, int(share(added, "cache-10")*float64(len(keys))+0.5), movedDel-strayDel, "every key of the removed node moves")
	restored, _ := movement(before, removed, "")
	assert.LessOrEqual(t, float64(restored)/float64(len(keys)), 2*tc.stray, "add then remove restores the placement")

	// Remove a node in the middle, which jump hash refuses.
	victim := "cache-3"
	require.ErrorIs(t, p.Remove(victim), tc.middleErr)
	after := owners(t, p, keys)
	movedMid, strayMid := movement(before, after, victim)
	assert.LessOrEqual(t, float64(strayMid)/float64(len(keys)), tc.stray, "keys moved between surviving nodes")
	assert.Equal(t, tc.middleErr != nil, slices.Contains(after, victim), "a removed node owns nothing")
	pct := func(n int) float64 { return 100 * float64(n) / float64(len(keys)) }
	t.Logf("%s: %d keys, 10 nodes: max/mean %.4f | add 11th: moved %.2f%% (ideal %.2f%%), between old nodes %.3f%% | remove it: moved %.2f%% (its share %.2f%%) | remove cache-3 (err %v): moved %.2f%% (its share %.2f%%), between survivors %.3f%%",
		tc.name, len(keys), ratio, 100*addFrac, 100*ideal, pct(strayAdd), pct(movedDel), 100*share(added, "cache-10"),
		tc.middleErr, pct(movedMid), 100*share(before, victim), pct(strayMid))
}

// failoverKeys is the number of keys checkFailover follows through every removal.
const failoverKeys = 20_000

// checkFailover removes nodes in steps and checks, for every key, that its owner is the first node
// of its LocateN list (taken before any removal) that is still a member: the failover order that
// placements with HasFailoverOrder promise. Jump hash can only lose its newest nodes, so the first
// steps remove those; other placements then lose two nodes from the middle as well. It logs, for
// every placement, the share of the first removed node's keys that went to LocateN's second node.
func checkFailover(t *testing.T, tc placementCase, p Placement[string]) {
	names := nodeNames("cache", 10)
	require.NoError(t, p.Add(names...))
	keys := testKeys()[:failoverKeys]
	lists := make([][]string, len(keys))
	for i, k := range keys {
		var err error
		lists[i], err = p.LocateN(nil, k, len(names))
		require.NoError(t, err)
		require.Len(t, lists[i], len(names))
	}
	steps := [][]string{{"cache-9"}, {"cache-8", "cache-7"}}
	if tc.middleErr == nil {
		steps = append(steps, []string{"cache-3", "cache-5"})
	}
	gone := map[string]bool{}
	owned, second := 0, 0
	for s, step := range steps {
		require.NoError(t, p.Remove(step...))
		for _, n := range step {
			gone[n] = true
		}
		kept := 0
		for i, k := range keys {
			got, err := p.Locate(k)
			require.NoError(t, err)
			want := lists[i][slices.IndexFunc(lists[i], func(n string) bool { return !gone[n] })]
			if got == want {
				kept++
			}
			if s == 0 && lists[i][0] == "cache-9" {
				owned++
				if got == lists[i][1] {
					second++
				}
			}
		}
		require.Equal(t, tc.failover, HasFailoverOrder(p), "the placement claims failover order")
		if tc.failover {
			assert.Equal(t, len(keys), kept, "after removing %v, every key belongs to the first of its LocateN list still present", gone)
		}
	}
	secondShare := float64(second) / float64(owned)
	if tc.maxSecond > 0 {
		assert.LessOrEqual(t, secondShare, tc.maxSecond, "share of a removed owner's keys that go to LocateN's second node")
	}
	t.Logf("%s: owner cache-9 of 10 removed: %.2f%% of its %d keys went to LocateN's second node", tc.name, 100*secondShare, owned)
}

func share(owned []string, node string) float64 {
	n := 0
	for _, o := range owned {
		if o == node {
			n++
		}
	}
	return float64(n) / float64(len(owned))
}

func uniq[T comparable](s []T) []T {
	var out []T
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestWeights checks that the weighted placements give a node of weight 2 twice the keys.
func TestWeights(t *testing.T) {
	type weighted interface {
		Placement[string]
		AddWeighted(weight float64, nodes ...string) error
	}
	ring, err := NewRing(RingOptions[string]{})
	require.NoError(t, err)
	maglev, err := NewMaglev(MaglevOptions[string]{})
	require.NoError(t, err)
	hrw, err := NewRendezvous(RendezvousOptions[string]{})
	require.NoError(t, err)
	keys := testKeys()[:200_000]
	for _, tc := range []struct {
		name string
		p    weighted
	}{{"ring", ring}, {"maglev", maglev}, {"rendezvous", hrw}} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, tc.p.AddWeighted(1, "a", "b"))
			require.NoError(t, tc.p.AddWeighted(2, "big"))
			for _, w := range []float64{0, -1, math.NaN(), math.Inf(1)} {
				require.ErrorIs(t, tc.p.AddWeighted(w, "c"), ErrBadWeight)
			}
			owned := owners(t, tc.p, keys)
			assert.InDelta(t, 0.5, share(owned, "big"), 0.02, "weight 2 of 4 gets half the keys")
			assert.InDelta(t, 0.25, share(owned, "a"), 0.02)
		})
	}
}

// TestNodeKey checks that nodes of any comparable type are named by NodeKey, String or Sprint.
func TestNodeKey(t *testing.T) {
	type addr struct {
		host string
		port int
	}
	r, err := NewRing(RingOptions[addr]{NodeKey: func(a addr) string { return a.host }})
	require.NoError(t, err)
	require.NoError(t, r.Add(addr{"h1", 1}))
	require.ErrorIs(t, r.Add(addr{"h1", 2}), ErrDuplicateNode, "same NodeKey")
	assert.Equal(t, "{h1 1}", defaultNodeKey(addr{"h1", 1}))
	assert.Equal(t, "7", defaultNodeKey(7))
	assert.Equal(t, "1.5s", defaultNodeKey(1500*time.Millisecond), "a fmt.Stringer is named by String")
	assert.Equal(t, "x", defaultNodeKey("x"))
}

// FuzzPlacements checks every placement's invariants for arbitrary node names and keys: the owner
// is a member and LocateN's first node; LocateN is distinct; a new node takes keys only onto
// itself; removing a node that does not own a key leaves the key alone. Maglev may shift a few
// keys between surviving nodes by design, so it is held only to the first two.
func FuzzPlacements(f *testing.F) {
	f.Add("a,b,c", "key", "d", uint8(2))
	f.Add("10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379", "", "10.0.0.4:6379", uint8(5))
	f.Add("x", "\x00\xff", "y", uint8(1))
	f.Fuzz(func(t *testing.T, names, key, extra string, n uint8) {
		nodes := uniq(splitNames(names))
		if len(nodes) == 0 || len(nodes) > 50 || slices.Contains(nodes, extra) || extra == "" {
			return
		}
		for _, tc := range placementCases() {
			p := tc.new(t)
			require.NoError(t, p.Add(nodes...))
			owner, err := p.Locate(key)
			require.NoError(t, err)
			require.Contains(t, nodes, owner)
			some, err := p.LocateN(nil, key, int(n))
			require.NoError(t, err)
			require.Len(t, some, min(int(n), len(nodes)))
			require.Len(t, uniq(some), len(some), "%s: LocateN distinct", tc.name)
			if len(some) > 0 {
				require.Equal(t, owner, some[0], tc.name)
			}
			if HasFailoverOrder(p) && tc.middleErr == nil && len(nodes) > 1 {
				two, err := p.LocateN(nil, key, 2)
				require.NoError(t, err)
				require.NoError(t, p.Remove(two[0]))
				next, err := p.Locate(key)
				require.NoError(t, err)
				require.Equal(t, two[1], next, "%s: without its owner, a key goes to LocateN's second node", tc.name)
				require.NoError(t, p.Add(two[0]))
			}
			if tc.stray > 0 {
				continue
			}
			require.NoError(t, p.Add(extra))
			now, err := p.Locate(key)
			require.NoError(t, err)
			require.Contains(t, []string{owner, extra}, now, "%s: a new node takes keys only onto itself", tc.name)
			require.NoError(t, p.Remove(extra))
			if tc.middleErr != nil || len(nodes) == 1 {
				continue
			}
			other := nodes[0]
			if other == owner {
				other = nodes[1]
			}
			require.NoError(t, p.Remove(other))
			still, err := p.Locate(key)
			require.NoError(t, err)
			require.Equal(t, owner, still, "%s: removing another node leaves the key alone", tc.name)
		}
	})
}
