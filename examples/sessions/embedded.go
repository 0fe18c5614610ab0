package main

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Errors of the embedded fleet's kill and revive.
var (
	errUnknownNode = errors.New("sessions: no such node")
	errNotEmbedded = errors.New("sessions: kill and revive need embedded nodes (run without -redis or -cluster)")
)

// embedded is the set of miniredis servers the service starts in process when it is given no
// -redis, named node-0, node-1, … on loopback ports. Killing one closes its listener and every
// connection, as a crashed process would; reviving it listens on the same port again with the
// data it held, as a Redis restarted from its snapshot would. That is the interesting case: the
// revived node holds copies of sessions that were logged out while it was away, which is why the
// membership loop purges a node before it rejoins.
type embedded struct {
	log *slog.Logger

	mu      sync.Mutex // serialises kill and revive
	servers []*miniredis.Miniredis
	names   []string
	down    []bool
}

// startEmbedded starts n miniredis servers.
func startEmbedded(n int, log *slog.Logger) (*embedded, error) {
	e := &embedded{log: log}
	for i := range n {
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			e.Close()
			return nil, fmt.Errorf("sessions: start embedded redis %d: %w", i, err)
		}
		e.servers = append(e.servers, m)
		e.names = append(e.names, fmt.Sprintf("node-%d", i))
		e.down = append(e.down, false)
		log.Info("embedded redis started", "node", e.names[i], "addr", m.Addr())
	}
	return e, nil
}

// specs returns how to reach the servers.
func (e *embedded) specs() []nodeSpec {
	specs := make([]nodeSpec, len(e.servers))
	for i, m := range e.servers {
		specs[i] = nodeSpec{name: e.names[i], opts: &redis.Options{Addr: m.Addr()}}
	}
	return specs
}

func (e *embedded) index(name string) (int, error) {
	for i, n := range e.names {
		if n == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", errUnknownNode, name)
}

// kill stops the named server. It does not touch the ring: the store finds out the way it would
// find out about a real crash, through failing calls and health checks.
func (e *embedded) kill(name string) error {
	if e == nil {
		return errNotEmbedded
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	i, err := e.index(name)
	if err != nil {
		return err
	}
	if !e.down[i] {
		e.servers[i].Close()
		e.down[i] = true
		e.log.Warn("embedded redis killed", "node", name)
	}
	return nil
}

// revive restarts the named server on its old port, with its old data.
func (e *embedded) revive(name string) error {
	if e == nil {
		return errNotEmbedded
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	i, err := e.index(name)
	if err != nil {
		return err
	}
	if e.down[i] {
		if err := e.servers[i].Restart(); err != nil {
			return fmt.Errorf("sessions: revive %s: %w", name, err)
		}
		e.down[i] = false
		e.log.Info("embedded redis revived", "node", name, "addr", e.servers[i].Addr())
	}
	return nil
}

// Close stops every server.
func (e *embedded) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.servers {
		m.Close()
	}
}
