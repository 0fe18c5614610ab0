package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/girder-go/girder/shard"
)

// Errors of the store, which the HTTP layer maps to status codes.
var (
	// ErrNotFound: no replica holds the session (never created, logged out, or expired).
	ErrNotFound = errors.New("sessions: no such session")
	// ErrUnavailable: no replica of the session could be asked (in cluster mode: the master of
	// its slot, or the cluster).
	ErrUnavailable = errors.New("sessions: no replica reachable")
)

// Session is what the store keeps under "session:<ID>", as JSON, with a Redis TTL that ends at
// Expires.
type Session struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Store keeps sessions on a ring of Redis nodes, each on the key's replicas successive nodes
// (shard.Ring.LocateN): the owner, then the node that takes the key over if the owner leaves.
//
//   - Create writes every replica at once and succeeds when one of them took the write.
//   - Get asks the replicas in ring order and returns the first copy found. A replica that fails
//     (or whose breaker is open) is skipped, so a session stays readable while its owner is
//     down, before the membership loop has even noticed. A replica that answered "no such key"
//     before the copy was found gets the copy written back (read repair): that is how a node
//     that rejoined empty, or a node that became a replica when another left, fills up again.
//   - Delete deletes the key on every node of the ring, not only on the current replicas: copies
//     written under an earlier membership (before a node left or rejoined) must not outlive a
//     logout.
//
// A Store is safe for concurrent use.
type Store struct {
	ring     *shard.Ring[*node]
	replicas int
	ttl      time.Duration
	log      *slog.Logger
}

func sessionKey(id string) string { return keyPrefix + id }

// validID accepts the IDs Create makes (crypto/rand.Text: 26 characters of base32), so a client
// cannot make the store build arbitrary keys.
func validID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for _, c := range []byte(id) {
		if (c < 'A' || c > 'Z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// Replicas returns the names of the nodes that hold the session with this ID, owner first. It
// asks no node: the ring knows.
func (s *Store) Replicas(_ context.Context, id string) ([]string, error) {
	nodes, err := s.ring.LocateN(nil, sessionKey(id), s.replicas)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.name
	}
	return names, nil
}

// Create starts a session for user and returns it with the names of the nodes that stored it.
func (s *Store) Create(ctx context.Context, user string) (Session, []string, error) {
	sess, value, err := newSession(user, s.ttl)
	if err != nil {
		return Session{}, nil, err
	}
	key := sessionKey(sess.ID)
	nodes, err := s.ring.LocateN(nil, key, s.replicas)
	if err != nil {
		return Session{}, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	results, err := shard.Scatter(ctx, nodes, func(ctx context.Context, n *node) (struct{}, error) {
		return struct{}{}, n.set(ctx, key, value, s.ttl)
	}, shard.ScatterOptions[*node]{Policy: shard.Collect})
	var stored []string
	for _, r := range results {
		if r.Err == nil {
			stored = append(stored, r.Shard.name)
		}
	}
	if len(stored) == 0 {
		return Session{}, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err != nil {
		// Fewer copies than asked for: the session survives as long as the nodes that took it.
		s.log.Warn("session stored on fewer replicas", "stored_on", stored, "err", err)
	}
	return sess, stored, nil
}

// Get returns the session with this ID and the name of the node that answered.
func (s *Store) Get(ctx context.Context, id string) (Session, string, error) {
	if !validID(id) {
		return Session{}, "", ErrNotFound
	}
	key := sessionKey(id)
	var buf [8]*node // LocateN appends without allocating when there is room
	nodes, err := s.ring.LocateN(buf[:0], key, s.replicas)
	if err != nil {
		return Session{}, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var missed []*node
	var errs []error
	for _, n := range nodes {
		value, err := n.get(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return Session{}, "", ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		if value == nil {
			missed = append(missed, n)
			continue
		}
		var sess Session
		if err := json.Unmarshal(value, &sess); err != nil {
			return Session{}, "", fmt.Errorf("sessions: %s holds a corrupt session: %w", n.name, err)
		}
		s.repair(ctx, key, value, sess, missed)
		return sess, n.name, nil
	}
	if len(missed) > 0 {
		return Session{}, "", ErrNotFound
	}
	return Session{}, "", fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
}

// repair writes a session found on a later replica to the earlier replicas that did not have it,
// with the time the session has left. It is best effort: a failed repair is retried by the next
// read.
func (s *Store) repair(ctx context.Context, key string, value []byte, sess Session, missed []*node) {
	ttl := time.Until(sess.Expires)
	if ttl <= 0 {
		return
	}
	for _, n := range missed {
		if err := n.set(ctx, key, value, ttl); err != nil {
			s.log.Warn("read repair failed", "node", n.name, "err", err)
			continue
		}
		s.log.Debug("read repair", "node", n.name, "session", sess.ID)
	}
}

// Delete ends the session with this ID. It reports whether a copy was found, and fails only when
// no node could be asked.
func (s *Store) Delete(ctx context.Context, id string) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	key := sessionKey(id)
	members := s.ring.Nodes()
	if len(members) == 0 {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, shard.ErrNoNodes)
	}
	results, err := shard.Scatter(ctx, members, func(ctx context.Context, n *node) (int64, error) {
		return n.del(ctx, key)
	}, shard.ScatterOptions[*node]{Policy: shard.Collect})
	found, asked := false, 0
	for _, r := range results {
		if r.Err == nil {
			asked++
			found = found || r.Value > 0
		}
	}
	if asked == 0 {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err != nil {
		// A node that could not delete may serve its copy again until the TTL ends it, unless it
		// keeps failing: then its breaker takes it off the ring and it is purged before it
		// comes back.
		s.log.Warn("logout incomplete", "err", err)
	}
	return found, nil
}
