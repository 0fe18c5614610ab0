package lb

import (
	"math"
	"slices"
)

// choosePool applies the policy to one pool. ignoreHealth is panic mode; allUp says every
// backend was healthy as the pick began; tried lists backends a retry must avoid. It returns nil
// when no member is usable, and counted when the policy already counted the request in flight
// (LeastConnections's index does, under its lock).
func (b *Balancer[T]) choosePool(p *pool[T], ignoreHealth, allUp bool, key string, hasKey bool, tried []*state) (m *member[T], counted bool) {
	n := len(p.ms)
	if n == 0 {
		return nil, false
	}
	switch b.set.policy {
	case WeightedRoundRobin:
		return b.pickSWRR(p, ignoreHealth, tried), false
	case Random:
		return b.pickRandom(p, ignoreHealth, tried), false
	case LeastConnections:
		// The index knows loads and health, not panic mode, availability checks or retries:
		// with any of those in play the pick scans.
		if !ignoreHealth && !p.checked && len(tried) == 0 && p.lc != nil {
			if i := b.lc.pick(p.lc); i >= 0 {
				return p.ms[i], true
			}
		}
		m := b.pickLeast(p, ignoreHealth, tried)
		if m != nil {
			b.lc.took(m.st)
		}
		return m, true
	case P2CLeastRequest, P2CPeakEWMA:
		return b.pickP2C(p, ignoreHealth, allUp && !p.checked && len(tried) == 0, tried), false
	case ConsistentHash:
		if hasKey {
			return b.pickHash(p, key, ignoreHealth, tried), false
		}
	}
	return b.pickRR(p, ignoreHealth, tried), false
}

// maxTurns bounds how many turns of the shared round-robin counter a pick consumes while it
// meets unusable members, before it settles for the next usable one in order.
const maxTurns = 8

// pickRR takes the members in turn. A turn that meets an unusable member takes the next turn of
// the shared counter rather than the next member in order, so the member after one that is out
// does not get its turns too.
func (b *Balancer[T]) pickRR(p *pool[T], ignoreHealth bool, tried []*state) *member[T] {
	n := uint64(len(p.ms))
	var fallback *member[T]
	j := 0
	for range min(n, maxTurns) {
		j = int((b.rr.Add(1) - 1) % n)
		if usableAt(p, j, ignoreHealth, tried) {
			if b.admit(p.hot[j].st) {
				return p.ms[j]
			}
			if fallback == nil {
				fallback = p.ms[j]
			}
		}
	}
	if fallback != nil {
		return fallback
	}
	return b.scan(p, j, ignoreHealth, tried)
}

// usable reports whether m may take a request: healthy (unless in panic mode), available by its
// own check, and not tried already.
func usable[T any](m *member[T], ignoreHealth bool, tried []*state) bool {
	if !ignoreHealth && m.st.health.Load() != 0 {
		return false
	}
	if m.check != nil && !m.check.Available() {
		return false
	}
	return len(tried) == 0 || !slices.Contains(tried, m.st)
}

// usableAt is usable for the member at index i of p, read from its dense slot: the member
// itself is read only when the pool has availability checks.
func usableAt[T any](p *pool[T], i int, ignoreHealth bool, tried []*state) bool {
	h := &p.hot[i]
	if !ignoreHealth && h.st.health.Load() != 0 {
		return false
	}
	if p.checked {
		if c := h.m.check; c != nil && !c.Available() {
			return false
		}
	}
	return len(tried) == 0 || !slices.Contains(tried, h.st)
}

// admit applies slow start to the policies without a cost to scale: a backend at a fraction f of
// its weight is taken with probability f.
func (b *Balancer[T]) admit(st *state) bool {
	bits := st.factor.Load()
	if bits == factorOne {
		return true
	}
	return float64(b.random()>>11)/(1<<53) < float64(math.Float32frombits(bits))
}

// scan takes the first usable member from start on, wrapping around; a slow-starting member
// that admit declines is taken only when nothing else is usable.
func (b *Balancer[T]) scan(p *pool[T], start int, ignoreHealth bool, tried []*state) *member[T] {
	var fallback *member[T]
	n := len(p.ms)
	for i := range n {
		j := start + i
		if j >= n {
			j -= n
		}
		if !usableAt(p, j, ignoreHealth, tried) {
			continue
		}
		if b.admit(p.hot[j].st) {
			return p.ms[j]
		}
		if fallback == nil {
			fallback = p.ms[j]
		}
	}
	return fallback
}

// pickSWRR walks the smooth weighted round robin cycle, one position per turn of the shared
// counter; like pickRR, a position whose member is unusable takes the next turn.
func (b *Balancer[T]) pickSWRR(p *pool[T], ignoreHealth bool, tried []*state) *member[T] {
	var fallback *member[T]
	l := uint64(len(p.swrr))
	var pos uint64
	for range min(l, maxTurns) {
		pos = (b.rr.Add(1) - 1) % l
		if k := int(p.swrr[pos]); usableAt(p, k, ignoreHealth, tried) {
			if b.admit(p.hot[k].st) {
				return p.ms[k]
			}
			if fallback == nil {
				fallback = p.ms[k]
			}
		}
	}
	for range l {
		if fallback != nil {
			return fallback
		}
		if pos++; pos == l {
			pos = 0
		}
		if k := int(p.swrr[pos]); usableAt(p, k, ignoreHealth, tried) {
			fallback = p.ms[k]
		}
	}
	return fallback
}

func (b *Balancer[T]) pickRandom(p *pool[T], ignoreHealth bool, tried []*state) *member[T] {
	n := len(p.ms)
	for range 3 {
		r := b.random()
		i := below(r, n)
		if !p.uniform && uint32(r>>32) >= p.coin[i] {
			i = int(p.alias[i])
		}
		if usableAt(p, i, ignoreHealth, tried) && b.admit(p.hot[i].st) {
			return p.ms[i]
		}
	}
	return b.sample(p, ignoreHealth, tried)
}

// sample draws one usable member with probability proportional to its effective weight
// (weight × slow-start factor), in one pass (weighted reservoir sampling): Random's fallback
// when its draws keep meeting unusable members, fair to every member whichever are out.
func (b *Balancer[T]) sample(p *pool[T], ignoreHealth bool, tried []*state) *member[T] {
	var pick *member[T]
	var total float64
	for i := range p.ms {
		if !usableAt(p, i, ignoreHealth, tried) {
			continue
		}
		w := p.hot[i].w * p.hot[i].st.weightFactor()
		total += w
		if float64(b.random()>>11)/(1<<53)*total < w {
			pick = p.ms[i]
		}
	}
	return pick
}

// pickLeast scans every member and takes the lowest cost. Ties go to the member picked least
// recently under LeastConnections, which keeps that record, and to one drawn at random among
// the tied members otherwise: either way no member is favoured for where it sits.
func (b *Balancer[T]) pickLeast(p *pool[T], ignoreHealth bool, tried []*state) *member[T] {
	best, ties := -1, 0
	var bestLoad, bestWeight float64
	var seen uint64
	if b.set.trackEWMA {
		seen = b.seen.Load()
	}
	lc := b.lc != nil
	for j := range p.ms {
		if !usableAt(p, j, ignoreHealth, tried) {
			continue
		}
		h := p.hot[j]
		load, weight, at, aged := h.st.cost(h.w, b.set.trackEWMA)
		if aged {
			load *= age(seen, at, p.snap.aging)
		}
		x, y := load*bestWeight, bestLoad*weight
		switch {
		case best < 0 || x < y:
			best, bestLoad, bestWeight, ties = j, load, weight, 1
		case x > y:
		case lc:
			if h.st.lcStamp.Load() < p.hot[best].st.lcStamp.Load() {
				best, bestLoad, bestWeight = j, load, weight
			}
		default:
			if ties++; below(b.random(), ties) == 0 {
				best, bestLoad, bestWeight = j, load, weight
			}
		}
	}
	if best < 0 {
		return nil
	}
	return p.ms[best]
}

// cost returns a member's load and effective weight; the policy prefers the lower load/weight.
// Least request: requests in flight + 1. Peak EWMA: latency × (in flight + 1), with a member
// that has requests out but no latency yet ranked last (Finagle's penalty), so a new backend
// takes one request at a time until its first response. A latency-based load comes back not
// yet aged: aged is set and at is the response count of its last update, for the caller to age.
func (st *state) cost(weight float64, ewma bool) (load, w float64, at uint32, aged bool) {
	active := float64(max(st.active.Load(), 0)) // negative only after a misused untracked lease
	load = active + 1
	if ewma {
		var lat float64
		lat, at = unpackLatency(st.latency.Load())
		switch {
		case lat > 0:
			load *= lat
			aged = true
		case active > 0:
			load = 1e300 * (1 - 1/load) // finite even times MaxWeight
		default:
			load = 0
		}
	}
	if bits := st.factor.Load(); bits != factorOne {
		weight *= float64(math.Float32frombits(bits))
	}
	return load, weight, at, aged
}

// pickP2C draws two distinct members and keeps the cheaper one. free says every member is
// usable (all healthy, no availability checks, nothing tried), which spares reading each
// candidate's health; otherwise pickP2CUsable draws among the usable members only.
func (b *Balancer[T]) pickP2C(p *pool[T], ignoreHealth, free bool, tried []*state) *member[T] {
	n := len(p.ms)
	if n == 1 {
		if usableAt(p, 0, ignoreHealth, tried) {
			return p.ms[0]
		}
		return nil
	}
	if !free {
		return b.pickP2CUsable(p, ignoreHealth, tried)
	}
	r := b.random()
	i := below(r, n)
	j := below(r>>32, n-1)
	if j >= i {
		j++
	}
	return p.hot[b.cheaper(p, i, j)].m
}

// pickP2CUsable draws a usable member, then a second usable one, and keeps the cheaper. Taking
// a usable candidate alone when its partner is out would hand it the partner's share without
// weighing it, so the partner is drawn again instead. When the draws keep meeting unusable
// members, a full scan decides.
func (b *Balancer[T]) pickP2CUsable(p *pool[T], ignoreHealth bool, tried []*state) *member[T] {
	const draws = 4
	n := len(p.ms)
	i := -1
	for range draws {
		if k := below(b.random(), n); usableAt(p, k, ignoreHealth, tried) {
			i = k
			break
		}
	}
	if i >= 0 {
		for range draws {
			j := below(b.random(), n-1)
			if j >= i {
				j++
			}
			if usableAt(p, j, ignoreHealth, tried) {
				return p.hot[b.cheaper(p, i, j)].m
			}
		}
	}
	return b.pickLeast(p, ignoreHealth, tried)
}

// cheaper returns whichever of members i and j costs less, i on a tie.
func (b *Balancer[T]) cheaper(p *pool[T], i, j int) int {
	ewma := b.set.trackEWMA
	hx, hy := p.hot[i], p.hot[j]
	lx, wx, ax, agedx := hx.st.cost(hx.w, ewma)
	ly, wy, ay, agedy := hy.st.cost(hy.w, ewma)
	if agedx && agedy {
		// Both estimates age by the same factor from the later update on, so only the gap
		// between their updates matters: one exponential, no read of the shared response count.
		// Against an unaged load (none, or the no-latency penalty) ageing cannot change the
		// order. Which side ages is a coin toss to the CPU, so it is chosen with conditional
		// moves on the bits rather than a branch.
		d := int32(ax - ay)
		ad := uint64(max(int64(d), -int64(d)))
		var f float64
		if tab := &p.snap.ageTab; ad < uint64(len(tab)) {
			f = tab[ad]
		} else {
			f = ageFactor(float64(ad) * p.snap.aging)
		}
		e := math.Float64bits(f)
		fx, fy := e, math.Float64bits(1)
		if d > 0 {
			fx, fy = fy, fx
		}
		lx *= math.Float64frombits(fx)
		ly *= math.Float64frombits(fy)
	}
	if ly*wx < lx*wy {
		return j
	}
	return i
}

// pickHash asks the placement (Options.Placement, or the pool's own ring) for key's owner and
// takes it when usable; otherwise rendezvous hashing over the usable members decides.
func (b *Balancer[T]) pickHash(p *pool[T], key string, ignoreHealth bool, tried []*state) *member[T] {
	if b.set.placement != nil {
		if m := p.snap.byName[b.set.placement(key)]; m != nil && m.backup == p.ms[0].backup && usable(m, ignoreHealth, tried) {
			return m
		}
	}
	kh := mix64(fnv64(key))
	if len(p.ring) > 0 {
		i, _ := slices.BinarySearch(p.ring, kh)
		if i == len(p.ring) {
			i = 0
		}
		if k := int(p.ringOwner[i]); usableAt(p, k, ignoreHealth, tried) {
			return p.ms[k]
		}
	}
	return rendezvous(p, kh, ignoreHealth, tried)
}

// rendezvous returns the usable member with the highest (weighted) score for the key hash kh:
// the fallback when a key's owner is out, which spreads that owner's keys over the others and
// gives them back when it returns.
func rendezvous[T any](p *pool[T], kh uint64, ignoreHealth bool, tried []*state) *member[T] {
	var best *member[T]
	bestScore := math.Inf(-1)
	for i, m := range p.ms {
		if !usableAt(p, i, ignoreHealth, tried) {
			continue
		}
		h := mix64(kh ^ m.nameHash)
		score := float64(h)
		if !p.uniform {
			// Weighted rendezvous: w / -ln(u) for u uniform in (0, 1).
			u := (float64(h>>11) + 0.5) / (1 << 53)
			score = p.w[i] / -math.Log(u)
		}
		if score > bestScore {
			best, bestScore = m, score
		}
	}
	return best
}
