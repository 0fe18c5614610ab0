package lb

import (
	"math"
	"sync"
)

// lcIndex keeps each pool's least-loaded usable backend at the root of a tournament tree for
// LeastConnections, so a pick does not scan every backend. A leaf per member holds its cost
// (requests in flight + 1, over its effective weight; +Inf while health has it out) and each
// inner node the leaf that wins below it. A pick reads the root and counts a request on it;
// taking or ending a request, or a health change, updates one leaf and replays the matches on
// its path to the root: O(log n), and a Done usually stops after a level or two because the
// leaf loses where it lost before.
//
// The trees sit behind one mutex, and every change to the in-flight count of a
// LeastConnections backend takes it, so a tree is never stale. A lock-free tree would have to
// refresh each node on the path twice with compare-and-swap to stay correct under concurrent
// changes, which costs more than the lock at any size worth indexing. Ties go to the member
// picked least recently, by the tree or by the scan that stands in for it (see pickLeast), so
// equal backends take turns whichever of them are out.
type lcIndex struct {
	mu    sync.Mutex
	clock uint64    // picks through the index; a leaf's stamp is the clock at its last pick
	live  []*lcTree // the trees of the current snapshot
}

// lcTree is the tournament tree of one pool, parallel to the pool's members. Guarded by the
// index's mu.
type lcTree struct {
	size int     // leaf slots: a power of two, at least the number of members
	node []int32 // node[k] for 1 ≤ k < size: the winning member below k; node[size+i] is i, or -1 past the members
	leaf []lcLeaf
	live bool // the tree of a pool of the current snapshot
}

type lcLeaf struct {
	st     *state
	load   float64 // requests in flight + 1
	weight float64 // the member's weight times its slow-start factor
	base   float64 // the member's weight
	stamp  uint64  // the index's clock when the member was last picked, by the tree or a scan
}

// publishLC replaces the index's trees by trees over s's pools. States that left the
// membership drop out of the index: their remaining Dones only release their count.
func publishLC[T any](x *lcIndex, s *snapshot[T]) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, t := range x.live {
		t.live = false
		for _, l := range t.leaf {
			l.st.lcTree = nil
		}
	}
	x.live = nil
	for _, p := range []*pool[T]{&s.primary, &s.backup} {
		n := len(p.hot)
		if n == 0 {
			continue
		}
		size := 1
		for size < n {
			size *= 2
		}
		t := &lcTree{size: size, node: make([]int32, 2*size), leaf: make([]lcLeaf, n), live: true}
		for i, h := range p.hot {
			t.leaf[i] = lcLeaf{st: h.st, base: h.w, stamp: h.st.lcStamp.Load()}
			t.set(int32(i))
			h.st.lcTree, h.st.lcLeaf = t, int32(i)
			t.node[size+i] = int32(i)
		}
		for i := size + n; i < 2*size; i++ {
			t.node[i] = -1
		}
		for k := size - 1; k >= 1; k-- {
			t.node[k] = t.better(t.node[2*k], t.node[2*k+1])
		}
		p.lc = t
		x.live = append(x.live, t)
	}
}

// set reads leaf i's cost from its backend's live state.
func (t *lcTree) set(i int32) {
	l := &t.leaf[i]
	l.load = float64(max(l.st.active.Load(), 0) + 1) // negative only after a misused untracked lease
	if l.st.health.Load() != 0 {
		l.load = math.Inf(1) // out of rotation: loses to every healthy member
	}
	l.weight = l.base * l.st.weightFactor()
}

// better returns the cheaper of members a and b (-1 for none): the lower cost, on a tie the
// one picked longer ago, on a tie of that the first.
func (t *lcTree) better(a, b int32) int32 {
	if b < 0 {
		return a
	}
	if a < 0 {
		return b
	}
	la, lb := &t.leaf[a], &t.leaf[b]
	x, y := la.load*lb.weight, lb.load*la.weight
	if x < y || x == y && la.stamp <= lb.stamp {
		return a
	}
	return b
}

// fix replays the matches above leaf i after its cost changed. Once a node's winner is some
// other member and stays the same, nothing above it can change.
func (t *lcTree) fix(i int32) {
	for k := (t.size + int(i)) >> 1; k >= 1; k >>= 1 {
		w := t.better(t.node[2*k], t.node[2*k+1])
		if t.node[k] == w && w != i {
			return
		}
		t.node[k] = w
	}
}

// pick counts a request on t's least-loaded healthy member and returns its index, or -1 when
// t is no longer live (the membership changed since the caller loaded its snapshot) or has no
// healthy member.
func (x *lcIndex) pick(t *lcTree) int {
	x.mu.Lock()
	i := int32(-1)
	if t.live {
		i = t.node[1]
	}
	if i < 0 || t.leaf[i].load == math.Inf(1) {
		x.mu.Unlock()
		return -1
	}
	l := &t.leaf[i]
	l.st.active.Add(1)
	x.clock++
	l.stamp = x.clock // st.lcStamp is left to the scans: a store of it would cost this path a locked instruction
	t.set(i)
	t.fix(i)
	x.mu.Unlock()
	return int(i)
}

// took counts a request on st, which a scan chose, and stamps it as picked now.
func (x *lcIndex) took(st *state) {
	x.mu.Lock()
	st.active.Add(1)
	x.clock++
	st.lcStamp.Store(x.clock)
	if t := st.lcTree; t != nil {
		t.leaf[st.lcLeaf].stamp = x.clock
	}
	x.refreshLocked(st)
	x.mu.Unlock()
}

// refresh re-reads st's leaf after its health changed.
func (x *lcIndex) refresh(st *state) {
	x.mu.Lock()
	x.refreshLocked(st)
	x.mu.Unlock()
}

// add changes st's in-flight count by d and its leaf with it.
func (x *lcIndex) add(st *state, d int64) {
	x.mu.Lock()
	st.active.Add(d)
	x.refreshLocked(st)
	x.mu.Unlock()
}

// setFactor stores st's slow-start factor (float32 bits) and reweighs its leaf.
func (x *lcIndex) setFactor(st *state, bits uint32) {
	x.mu.Lock()
	st.factor.Store(bits)
	x.refreshLocked(st)
	x.mu.Unlock()
}

func (x *lcIndex) refreshLocked(st *state) {
	if t := st.lcTree; t != nil {
		t.set(st.lcLeaf)
		t.fix(st.lcLeaf)
	}
}
