package replica

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Role is what a node's last check found it to be.
type Role uint8

const (
	RoleUnknown Role = iota // not checked yet, or down since its first check
	RolePrimary             // not in recovery: takes writes
	RoleReplica             // in recovery: read-only, replaying the primary's log
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleReplica:
		return "replica"
	}
	return "unknown"
}

// Probe is what one check learns of a node.
type Probe struct {
	// InRecovery is pg_is_in_recovery(): true on a replica, false on a primary.
	InRecovery bool
	// LSN is the node's log position: pg_current_wal_insert_lsn() on a primary (the Token a
	// read waits for), pg_last_wal_replay_lsn() on a replica.
	LSN uint64
	// ReplayDelay is, on a replica that has received log it has not replayed yet, the time since
	// the last transaction it replayed was committed; 0 when it is caught up.
	ReplayDelay time.Duration
}

// ProbeFunc asks a node for its role and log position. It must honour ctx.
type ProbeFunc func(ctx context.Context, db DB) (Probe, error)

// probeSQL answers in one round trip. On a primary the position is pg_current_wal_insert_lsn()
// (not pg_current_wal_lsn(), which can trail a commit under synchronous_commit=off); it fails on
// a replica, so CASE keeps it off there. When the last record ended at a page boundary, the insert
// position lies past the next page's header (24 bytes, 40 on a segment's first page, as after a
// WAL switch) while a replica that replayed everything reports the boundary itself: such a
// position is moved back to the boundary, or a token taken on an idle primary would never be
// replayed. No record ends inside a page header, so this keeps tokens safe.
const probeSQL = `SELECT r,
	COALESCE(CASE WHEN r THEN (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::int8
		ELSE (SELECT CASE WHEN i % b = 24 OR i % g = 40 THEN i - i % b ELSE i END
			FROM (SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8 AS i,
				current_setting('wal_block_size')::int8 AS b,
				pg_size_bytes(current_setting('wal_segment_size')) AS g) AS w)
		END, 0),
	CASE WHEN r AND pg_last_wal_receive_lsn() IS DISTINCT FROM pg_last_wal_replay_lsn()
		THEN COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, 0)
		ELSE 0 END
FROM pg_is_in_recovery() AS r`

// SQLProbe is the default ProbeFunc: one query of pg_is_in_recovery(), the log position and the
// replay delay.
func SQLProbe(ctx context.Context, db DB) (Probe, error) {
	var (
		p     Probe
		lsn   int64
		delay float64
	)
	if err := db.QueryRow(ctx, probeSQL).Scan(&p.InRecovery, &lsn, &delay); err != nil {
		return Probe{}, err
	}
	p.LSN = uint64(max(lsn, 0))
	p.ReplayDelay = time.Duration(max(delay, 0) * float64(time.Second))
	return p, nil
}

// NodeStatus is a node as its last check saw it.
type NodeStatus struct {
	Name      string
	Role      Role          // the role found by the last successful check; RoleUnknown before one
	Up        bool          // the last check succeeded, or fewer than DownAfter in a row failed
	Err       error         // why the last check failed; nil when it succeeded
	Fit       bool          // a replica that reads may go to (up, in recovery, within the lag limits)
	CheckedAt time.Time     // when the last check finished; zero before the first
	Latency   time.Duration // how long the last successful check took
	LSN       uint64        // log position reported by the last successful check
	LagBytes  uint64        // replicas: log bytes behind the most advanced node
	LagTime   time.Duration // replicas: replay delay in time
}

// node is one server and what the router knows of it beyond the current view.
type node struct {
	name string
	db   DB
	// replayed is the highest replay position known for the node: set by each check, raised by
	// reads that wait for a token. Token reads compare against it without a lock.
	replayed atomic.Uint64
	// failures counts the checks in a row that failed; only the checking goroutine uses it.
	failures int
	// lastPoll is when (Unix ns) a waiting read last asked the node for its replay position, so
	// that many waiting reads share one question per PollEvery instead of asking one each.
	lastPoll atomic.Int64
}

// noteReplayed raises n.replayed to lsn.
func (n *node) noteReplayed(lsn uint64) {
	for {
		cur := n.replayed.Load()
		if lsn <= cur || n.replayed.CompareAndSwap(cur, lsn) {
			return
		}
	}
}

// view is an immutable routing table built by one round of checks and swapped in atomically, so
// routing takes no lock.
type view struct {
	primary   *node
	noPrimary *NoPrimaryError // non-nil when primary is nil
	// fit are the replicas reads may go to, most replayed first; cands and lsns run in parallel.
	fit       []*node
	cands     []Candidate
	lsns      []uint64
	noReplica *NoReplicaError // non-nil when fit is empty
	status    []NodeStatus
	checked   bool // built from checks, not from the configuration
}

// initialView trusts the configuration until the first round of checks has finished: writes go
// to the configured primary and reads to the primary too, since no replica's lag is known yet.
func initialView(nodes []*node) *view {
	v := &view{primary: nodes[0], noReplica: &NoReplicaError{}}
	for i, n := range nodes {
		st := NodeStatus{Name: n.name, Err: ErrNotChecked}
		if i > 0 {
			v.noReplica.Nodes = append(v.noReplica.Nodes, NodeError{Node: n.name, Err: ErrNotChecked})
		}
		v.status = append(v.status, st)
	}
	return v
}

type probeResult struct {
	p       Probe
	err     error
	latency time.Duration
	at      time.Time
}

// checkRound probes every node concurrently and returns the results, or nil if ctx ended first.
func (r *Router) checkRound(ctx context.Context) []probeResult {
	res := make([]probeResult, len(r.nodes))
	var wg sync.WaitGroup
	for i, n := range r.nodes {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, r.opts.CheckTimeout)
			defer cancel()
			start := time.Now()
			p, err := r.probe(pctx, n.db)
			end := time.Now()
			res[i] = probeResult{p: p, err: err, latency: end.Sub(start), at: end}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return res
}

// probe runs the ProbeFunc, turning a panic into an error.
func (r *Router) probe(ctx context.Context, db DB) (p Probe, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("replica: probe panicked: %v", v)
		}
	}()
	return r.opts.Probe(ctx, db)
}

// buildView turns one round of results into the next view, given the previous one. It changes
// nothing outside the view but the nodes' failure counts and replay positions; the caller
// reports the changes.
func (r *Router) buildView(prev *view, res []probeResult) *view {
	v := &view{checked: true, status: make([]NodeStatus, len(r.nodes))}
	primaries := r.nodeStatuses(prev, res, v.status)
	r.choosePrimary(v, primaries)
	r.chooseReplicas(v)
	return v
}

// nodeStatuses fills status from one round of results and returns the indexes of the nodes
// that are up and primary.
func (r *Router) nodeStatuses(prev *view, res []probeResult, status []NodeStatus) (primaries []int) {
	var ref uint64 // the most advanced log position: lag is measured from it
	for _, x := range res {
		if x.err == nil {
			ref = max(ref, x.p.LSN)
		}
	}
	for i, x := range res {
		n := r.nodes[i]
		st := prev.status[i]
		st.CheckedAt, st.Err, st.Fit = x.at, x.err, false
		if x.err != nil {
			n.failures++
			// Up so far and not yet DownAfter failures in a row: keep what the last good check
			// found, only the lag grows.
			st.Up = st.Up && prev.checked && n.failures < r.opts.DownAfter
			if st.Up && st.Role == RoleReplica {
				st.LagBytes = ref - min(ref, st.LSN)
			}
		} else {
			n.failures = 0
			st.Up = true
			st.Latency, st.LSN, st.LagBytes, st.LagTime = x.latency, x.p.LSN, 0, 0
			st.Role = RolePrimary
			if x.p.InRecovery {
				st.Role = RoleReplica
				st.LagBytes, st.LagTime = ref-x.p.LSN, x.p.ReplayDelay
				n.replayed.Store(x.p.LSN)
			}
		}
		if st.Up && st.Role == RolePrimary {
			primaries = append(primaries, i)
		}
		status[i] = st
	}
	return primaries
}

// choosePrimary sets v's primary when exactly one node is up and primary, and otherwise says
// why there is none, node by node.
func (r *Router) choosePrimary(v *view, primaries []int) {
	if len(primaries) == 1 {
		v.primary = r.nodes[primaries[0]]
		return
	}
	v.noPrimary = &NoPrimaryError{}
	for i, st := range v.status {
		reason := st.Err
		switch {
		case !st.Up:
		case st.Role == RoleReplica:
			reason = ErrInRecovery
		default:
			reason = ErrSplitBrain
		}
		v.noPrimary.Nodes = append(v.noPrimary.Nodes, NodeError{Node: r.nodes[i].name, Err: reason})
	}
}

// chooseReplicas marks the fit replicas of v and orders them most replayed first, so that the
// replicas that have replayed a token are a prefix of fit.
func (r *Router) chooseReplicas(v *view) {
	type fitNode struct {
		n   *node
		st  *NodeStatus
		lsn uint64
	}
	var (
		fits  []fitNode
		unfit []NodeError
	)
	for i := range v.status {
		st := &v.status[i]
		if st.Up && st.Role == RolePrimary {
			continue
		}
		if reason := r.unfit(st); reason != nil {
			unfit = append(unfit, NodeError{Node: st.Name, Err: reason})
			continue
		}
		st.Fit = true
		// A read that waited may have raised a position since this round's probe: take the higher.
		n := r.nodes[i]
		fits = append(fits, fitNode{n: n, st: st, lsn: max(st.LSN, n.replayed.Load())})
	}
	if len(fits) == 0 {
		v.noReplica = &NoReplicaError{Nodes: unfit}
		return
	}
	slices.SortStableFunc(fits, func(a, b fitNode) int { return cmp.Compare(b.lsn, a.lsn) })
	for _, f := range fits {
		v.fit = append(v.fit, f.n)
		v.cands = append(v.cands, Candidate{Name: f.st.Name, Latency: f.st.Latency, LagBytes: f.st.LagBytes, LagTime: f.st.LagTime})
		v.lsns = append(v.lsns, f.lsn)
	}
}

// unfit returns why a node that is not the primary cannot serve reads, or nil.
func (r *Router) unfit(st *NodeStatus) error {
	switch {
	case !st.Up:
		return st.Err
	case r.opts.MaxLagBytes > 0 && st.LagBytes > r.opts.MaxLagBytes:
		return fmt.Errorf("%w: %d bytes behind, more than MaxLagBytes %d", ErrLagging, st.LagBytes, r.opts.MaxLagBytes)
	case r.opts.MaxLagTime > 0 && st.LagTime > r.opts.MaxLagTime:
		return fmt.Errorf("%w: %v behind, more than MaxLagTime %v", ErrLagging, st.LagTime, r.opts.MaxLagTime)
	}
	return nil
}

// reportChanges calls the OnNodeChange hook and logs for each node whose role, reachability or
// fitness changed.
func (r *Router) reportChanges(prev, next *view) {
	for i, st := range next.status {
		old := prev.status[i]
		if prev.checked && old.Role == st.Role && old.Up == st.Up && old.Fit == st.Fit {
			continue
		}
		if h := r.opts.Hooks.OnNodeChange; h != nil {
			h(NodeChangeInfo{Old: old, New: st})
		}
		if l := r.opts.Logger; l != nil {
			level := slog.LevelInfo
			if !st.Up {
				level = slog.LevelWarn
			}
			l.Log(context.Background(), level, "replica: node changed", "node", st.Name,
				"role", st.Role.String(), "up", st.Up, "fit", st.Fit, "err", st.Err)
		}
	}
}

// claimPoll reports whether the caller should ask n for its position now: no other waiting read
// has in the last step.
func (n *node) claimPoll(step time.Duration) bool {
	now := time.Now().UnixNano()
	last := n.lastPoll.Load()
	return now-last >= int64(step) && n.lastPoll.CompareAndSwap(last, now)
}
