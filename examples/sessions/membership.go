package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/shard"
)

// keyPrefix starts every key the store writes; a node is purged of these keys before it rejoins.
const keyPrefix = "session:"

// membership keeps the ring equal to the set of nodes whose breaker is closed. One goroutine owns
// every change to the ring, so there is no check-then-act race between a node leaving and coming
// back; lookups never wait for it (the ring publishes immutable snapshots).
//
// Two things wake it:
//
//   - a ticker, every cfg.healthEvery, on which it pings every node through the node's breaker.
//     The pings are what notices a dead node that gets no traffic, and, while a breaker is open,
//     the first ping after the open period is the half-open probe that closes it again;
//   - a breaker changing state (kick), so that failures seen by requests take the node off the
//     ring without waiting for the next tick.
//
// A node whose breaker opens leaves the ring at once: only the keys it owned move, to the nodes
// that follow its points, which already hold their second copy. A node whose breaker closes again
// is purged of its session keys first (it missed every write and logout while it was away) and
// then rejoins: the keys it owned come back to it, and reads repair its copies as they go.
type membership struct {
	ring  *shard.Ring[*node]
	nodes []*node
	every time.Duration
	log   *slog.Logger
	kick  <-chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// startMembership puts every node on the ring and starts the loop. A node that is down at start
// fails its first health checks and leaves the ring.
func startMembership(nodes []*node, cfg config, kick <-chan struct{}) (*membership, error) {
	ring, err := shard.NewRing(shard.RingOptions[*node]{NodeKey: nodeKey})
	if err != nil {
		return nil, fmt.Errorf("sessions: ring: %w", err)
	}
	if err := ring.Add(nodes...); err != nil {
		return nil, fmt.Errorf("sessions: ring: %w", err)
	}
	for _, n := range nodes {
		n.inRing.Store(true)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &membership{ring: ring, nodes: nodes, every: cfg.healthEvery, log: cfg.logger, kick: kick, cancel: cancel}
	m.wg.Go(func() { m.loop(ctx) })
	return m, nil
}

// Close stops the loop and waits for it. It is idempotent.
func (m *membership) Close() error {
	m.once.Do(func() {
		m.cancel()
		m.wg.Wait()
	})
	return nil
}

func (m *membership) loop(ctx context.Context) {
	tick := time.NewTicker(m.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.check(ctx)
		case <-m.kick:
		}
		m.reconcile(ctx)
	}
}

// check pings every node at once; shard.Scatter with the Collect policy waits for all of them
// and lets one node's failure stop nothing. The results need no reading: every outcome has
// already been recorded by the node's breaker, which is the point.
func (m *membership) check(ctx context.Context) {
	_, _ = shard.Scatter(ctx, m.nodes, func(ctx context.Context, n *node) (struct{}, error) {
		return struct{}{}, n.ping(ctx)
	}, shard.ScatterOptions[*node]{Policy: shard.Collect})
}

// reconcile brings the ring in line with the breakers.
func (m *membership) reconcile(ctx context.Context) {
	for _, n := range m.nodes {
		healthy := n.breaker.State() == breaker.Closed
		switch {
		case !healthy && n.inRing.Load():
			if err := m.ring.Remove(n); err != nil {
				m.log.Error("ring remove", "node", n.name, "err", err)
				continue
			}
			n.inRing.Store(false)
			m.log.Warn("node left the ring", "node", n.name, "breaker", n.breaker.State(), "members", m.ring.Len())
		case healthy && !n.inRing.Load():
			purged, err := n.purge(ctx, keyPrefix)
			if err != nil {
				// The breaker has recorded the failure; the next tick tries again.
				m.log.Warn("purge before rejoin failed", "node", n.name, "err", err)
				continue
			}
			if err := m.ring.Add(n); err != nil {
				m.log.Error("ring add", "node", n.name, "err", err)
				continue
			}
			n.inRing.Store(true)
			m.log.Info("node rejoined the ring", "node", n.name, "purged_keys", purged, "members", m.ring.Len())
		}
	}
}
