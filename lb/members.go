package lb

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// member is one backend as a snapshot holds it: immutable, so picks read it without a lock.
// Its live state sits behind st, which survives membership changes that keep the name.
type member[T any] struct {
	name     string
	value    T
	check    Availability // nil: always available
	nameHash uint64
	weight   int
	backup   bool
	st       *state
}

// Health bits; a backend is healthy when none is set.
const (
	downEjected uint32 = 1 << iota // passive: out until EjectFor passes
	downProbe                      // active: the last probes failed
)

// state is a backend's live state. The atomics are read on the pick path; the rest is guarded
// by the balancer's mutex (mu of Balancer), which every health transition takes.
// The fields a pick and a Done touch come first and fill 24 bytes, so they share one cache line.
type state struct {
	active atomic.Int64 // requests in flight
	// latency is the peak-EWMA estimate (float32 bits of nanoseconds, high half) and the low
	// half of the balancer's response count when it was last updated; see packLatency.
	latency atomic.Uint64
	health  atomic.Uint32 // down bits
	factor  atomic.Uint32 // float32 bits of the slow-start weight factor, 1 outside slow start
	lc      *lcIndex      // LeastConnections only: the index every change of active goes through

	name string

	lcTree  *lcTree       // the live tree holding this backend, nil when none; guarded by lc.mu
	lcLeaf  int32         // its leaf in lcTree; guarded by lc.mu
	lcStamp atomic.Uint64 // lc's clock at its last pick; written under lc.mu, read by scans

	failMu    sync.Mutex // guards the passive window, touched only when a failure is reported
	failStart time.Time
	fails     int

	probeFails, probePasses int         // guarded by the balancer's mu
	ejectTimer, slowTimer   *time.Timer // guarded by the balancer's mu
	slowStep                int         // guarded by the balancer's mu
	removed                 bool        // guarded by the balancer's mu
}

var factorOne = math.Float32bits(1)

func (b *Balancer[T]) newState(name string) *state {
	st := &state{name: name, lc: b.lc}
	st.factor.Store(factorOne)
	return st
}

// acquire counts a request in flight on the backend.
func (st *state) acquire() {
	if st.lc != nil {
		st.lc.add(st, 1)
		return
	}
	st.active.Add(1)
}

// release ends a request counted by acquire.
func (st *state) release() {
	if st.lc != nil {
		st.lc.add(st, -1)
		return
	}
	st.active.Add(-1)
}

// setFactor stores the slow-start factor (float32 bits), which LeastConnections's index weighs.
func (st *state) setFactor(bits uint32) {
	if st.lc != nil {
		st.lc.setFactor(st, bits)
		return
	}
	st.factor.Store(bits)
}

// weightFactor returns the slow-start factor in (0, 1].
func (st *state) weightFactor() float64 {
	bits := st.factor.Load()
	if bits == factorOne {
		return 1
	}
	return float64(math.Float32frombits(bits))
}

// pool is the primary or backup set of a snapshot with what each policy precomputes.
type pool[T any] struct {
	ms      []*member[T]
	hot     []hotSlot[T] // parallel to ms: what the policies read to weigh a member
	checked bool         // some member has an availability check
	w       []float64    // weights, parallel to ms
	uniform bool         // all weights equal
	coin    []uint32     // weighted Random's alias table: keep slot i when 32 random bits < coin[i]
	alias   []uint32     // … and take alias[i] otherwise
	swrr    []uint32     // one cycle of smooth weighted round robin, as indexes into ms
	lc      *lcTree      // LeastConnections's index of this pool

	snap      *snapshot[T] // the snapshot holding this pool
	ring      []uint64     // sorted points of the default consistent-hash ring
	ringOwner []uint32     // the index into ms owning each point
}

// hotSlot holds what a policy reads of a member side by side in a dense array, so weighing a
// candidate reads its slot and its state rather than chasing the member first.
type hotSlot[T any] struct {
	st *state
	m  *member[T]
	w  float64
}

// snapshot is the immutable membership that picks read through an atomic pointer.
type snapshot[T any] struct {
	primary, backup pool[T]
	byName          map[string]*member[T]
	all             []*member[T] // in the order they were added
	aging           float64      // peak-EWMA ageing per response seen: 1 / (DecayResponses × len(all))
	// ageTab[d] is e^(-d × aging): the ageing factor of the short gaps between two backends'
	// updates that P2C meets most, looked up rather than computed.
	ageTab [64]float64
	closed bool
}

// maxSWRRWork bounds the work of building a smooth weighted round robin cycle (its length times
// the number of backends); larger cycles are built from proportionally scaled-down weights.
const maxSWRRWork = 1 << 24

func newSnapshot[T any](all []*member[T], decayPer float64, withRing bool) *snapshot[T] {
	s := &snapshot[T]{all: all, byName: make(map[string]*member[T], len(all))}
	var primary, backup []*member[T]
	for _, m := range all {
		s.byName[m.name] = m
		if m.backup {
			backup = append(backup, m)
		} else {
			primary = append(primary, m)
		}
	}
	s.primary = newPool(primary, withRing)
	s.backup = newPool(backup, withRing)
	s.primary.snap, s.backup.snap = s, s
	s.aging = 1 / (decayPer * float64(max(len(all), 1)))
	for d := range s.ageTab {
		s.ageTab[d] = math.Exp(-float64(d) * s.aging)
	}
	return s
}

func newPool[T any](ms []*member[T], withRing bool) pool[T] {
	p := pool[T]{ms: ms, w: make([]float64, len(ms)), hot: make([]hotSlot[T], len(ms)), uniform: true}
	for i, m := range ms {
		p.w[i] = float64(m.weight)
		p.hot[i] = hotSlot[T]{st: m.st, m: m, w: p.w[i]}
		p.checked = p.checked || m.check != nil
		if m.weight != ms[0].weight {
			p.uniform = false
		}
	}
	if !p.uniform {
		p.coin, p.alias = aliasTable(p.w)
	}
	p.swrr = swrrCycle(ms)
	if withRing {
		p.ring, p.ringOwner = hashRing(ms)
	}
	return p
}

// aliasTable builds Vose's alias table for sampling index i with probability w[i]/Σw in O(1):
// draw a slot uniformly, then keep it or take its alias by one biased coin.
func aliasTable(w []float64) (coin, alias []uint32) {
	n := len(w)
	var sum float64
	for _, x := range w {
		sum += x
	}
	scaled := make([]float64, n)
	var small, large []int
	for i, x := range w {
		scaled[i] = x * float64(n) / sum
		if scaled[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	coin, alias = make([]uint32, n), make([]uint32, n)
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		coin[s], alias[s] = uint32(scaled[s]*(1<<32)), uint32(l)
		scaled[l] += scaled[s] - 1
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range append(small, large...) { // what rounding left: keep the slot itself
		coin[i], alias[i] = math.MaxUint32, uint32(i)
	}
	return coin, alias
}

// swrrCycle runs nginx's smooth weighted round robin for one full cycle: each step adds every
// weight to its backend's current value, takes the backend with the largest current value (the
// first on ties) and subtracts the total from it.
func swrrCycle[T any](ms []*member[T]) []uint32 {
	n := len(ms)
	if n == 0 {
		return nil
	}
	w := make([]int64, n)
	g := 0
	for i, m := range ms {
		w[i] = int64(m.weight)
		g = gcd(g, m.weight)
	}
	var total int64
	for i := range w {
		w[i] /= int64(g)
		total += w[i]
	}
	if limit := int64(max(maxSWRRWork/n, n)); total > limit {
		scale := float64(limit) / float64(total)
		total = 0
		for i := range w {
			w[i] = max(1, int64(math.Round(float64(w[i])*scale)))
			total += w[i]
		}
	}
	cur := make([]int64, n)
	cycle := make([]uint32, total)
	for k := range cycle {
		best := 0
		for i := range cur {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		cycle[k] = uint32(best)
	}
	return cycle
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// ringPoints is the number of ring points per unit of weight; maxRingPoints caps a ring's size
// (larger pools get proportionally fewer points per backend, at least one each).
const (
	ringPoints    = 256
	maxRingPoints = 1 << 18
)

// hashRing builds the default placement for ConsistentHash: a consistent-hash ring with
// ringPoints points per unit of weight, so a lookup is a binary search and a change of
// membership moves only the keys of the backends that came or went.
func hashRing[T any](ms []*member[T]) ([]uint64, []uint32) {
	total := 0
	for _, m := range ms {
		total += m.weight * ringPoints
	}
	scale := min(1, float64(maxRingPoints)/float64(max(total, 1)))
	type point struct {
		h     uint64
		owner uint32
	}
	points := make([]point, 0, min(total, maxRingPoints+len(ms)))
	for i, m := range ms {
		n := max(1, int(float64(m.weight*ringPoints)*scale))
		for k := range n {
			points = append(points, point{mix64(m.nameHash + uint64(k+1)*0x9e3779b97f4a7c15), uint32(i)})
		}
	}
	slices.SortFunc(points, func(a, b point) int { return cmp.Compare(a.h, b.h) })
	ring, owner := make([]uint64, len(points)), make([]uint32, len(points))
	for i, pt := range points {
		ring[i], owner[i] = pt.h, pt.owner
	}
	return ring, owner
}

// fnv64 hashes s with FNV-1a, allocation-free.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is the splitmix64 finaliser: a cheap bijection that spreads every input bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func (b *Balancer[T]) newMember(be Backend[T], st *state) *member[T] {
	m := &member[T]{name: be.Name, value: be.Value, check: be.Check, nameHash: fnv64(be.Name),
		weight: max(be.Weight, 1), backup: be.Backup, st: st}
	if f, ok := m.check.(AvailabilityFunc); ok && f == nil {
		m.check = nil // a nil func means no check, not a panic on every pick
	}
	if m.check == nil {
		if a, ok := any(be.Value).(Availability); ok {
			m.check = a
		}
	}
	return m
}

var errNilBalancer = errors.New("lb: nil Balancer")

// Add adds a backend. With SlowStart set it ramps up from a tenth of its weight. It returns
// ErrDuplicate when the name is taken and ErrClosed after Close.
func (b *Balancer[T]) Add(be Backend[T]) error {
	if b == nil {
		return errNilBalancer
	}
	if err := errors.Join(checkBackend("Add", be)...); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.snap.Load()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.byName[be.Name]; ok {
		return fmt.Errorf("lb: Add: %w: %q", ErrDuplicate, be.Name)
	}
	st := b.newState(be.Name)
	b.startSlowLocked(st)
	b.publishLocked(append(slices.Clip(s.all), b.newMember(be, st)))
	return nil
}

// Remove takes a backend out of the balancer. Leases already handed out stay valid; their Done
// affects nothing any more. It returns ErrUnknownBackend when no backend has the name.
func (b *Balancer[T]) Remove(name string) error {
	if b == nil {
		return errNilBalancer
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.snap.Load()
	if s.closed {
		return ErrClosed
	}
	m, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("lb: Remove: %w: %q", ErrUnknownBackend, name)
	}
	m.st.removed = true
	b.stopTimersLocked(m.st)
	all := make([]*member[T], 0, len(s.all)-1)
	for _, x := range s.all {
		if x != m {
			all = append(all, x)
		}
	}
	b.publishLocked(all)
	return nil
}

// SetWeight changes a backend's weight (0 means 1), keeping its live state.
func (b *Balancer[T]) SetWeight(name string, weight int) error {
	if b == nil {
		return errNilBalancer
	}
	if weight < 0 || weight > MaxWeight {
		return fmt.Errorf("lb: SetWeight: Weight %d is outside [0, %d]", weight, MaxWeight)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.snap.Load()
	if s.closed {
		return ErrClosed
	}
	old, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("lb: SetWeight: %w: %q", ErrUnknownBackend, name)
	}
	nm := *old
	nm.weight = max(weight, 1)
	all := slices.Clone(s.all)
	all[slices.Index(all, old)] = &nm
	b.publishLocked(all)
	return nil
}

// Update makes the membership exactly backends, as a service-discovery refresh would. Backends
// whose name is already present keep their live state (health, load, latency) and take the new
// value, weight, backup flag and check; the others are added (with slow start) or removed.
func (b *Balancer[T]) Update(backends []Backend[T]) error {
	if b == nil {
		return errNilBalancer
	}
	o := Options[T]{Backends: backends}
	if err := o.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.snap.Load()
	if s.closed {
		return ErrClosed
	}
	all := make([]*member[T], 0, len(backends))
	keep := make(map[string]bool, len(backends))
	for _, be := range backends {
		keep[be.Name] = true
		if old, ok := s.byName[be.Name]; ok {
			all = append(all, b.newMember(be, old.st))
			continue
		}
		st := b.newState(be.Name)
		b.startSlowLocked(st)
		all = append(all, b.newMember(be, st))
	}
	for _, m := range s.all {
		if !keep[m.name] {
			m.st.removed = true
			b.stopTimersLocked(m.st)
		}
	}
	b.publishLocked(all)
	return nil
}

// publishLocked swaps in a snapshot of all and recounts the healthy backends.
func (b *Balancer[T]) publishLocked(all []*member[T]) {
	s := newSnapshot(all, b.set.decay, b.set.policy == ConsistentHash && b.set.placement == nil)
	if b.lc != nil {
		publishLC(b.lc, s)
	}
	b.snap.Store(s)
	b.recountLocked()
}

// allHealthy is the bit of Balancer.healthy that says every backend is healthy. It stays true
// across a snapshot swap that precedes its recount: a new snapshot holds a subset of the old
// backends with their health, plus new backends, which start healthy.
const allHealthy = 1 << 63

// recountLocked stores how many primary and backup backends are healthy, packed in one word so
// a pick reads both with one load.
func (b *Balancer[T]) recountLocked() {
	s := b.snap.Load()
	var hp, hb uint64
	for _, m := range s.primary.ms {
		if m.st.health.Load() == 0 {
			hp++
		}
	}
	for _, m := range s.backup.ms {
		if m.st.health.Load() == 0 {
			hb++
		}
	}
	w := hp<<32 | hb
	if hp+hb == uint64(len(s.all)) {
		w |= allHealthy
	}
	b.healthy.Store(w)
}
