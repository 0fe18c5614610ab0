package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/girder-go/girder/breaker"
)

// nodeSpec names one Redis node and says how to reach it.
type nodeSpec struct {
	name string
	opts *redis.Options
}

// parseNodes reads the -redis list: "host:port" (the node is named by its address) or
// "name=host:port". The ring hashes the name, so a node keeps its keys as long as it keeps its
// name: give nodes names when their addresses may change.
func parseNodes(list []string) ([]nodeSpec, error) {
	var specs []nodeSpec
	var errs []error
	seen := make(map[string]bool)
	for _, item := range list {
		name, addr, named := strings.Cut(strings.TrimSpace(item), "=")
		if !named {
			addr = name
		}
		switch {
		case addr == "" || !strings.Contains(addr, ":"):
			errs = append(errs, fmt.Errorf("sessions: -redis %q: want host:port or name=host:port", item))
			continue
		case name == "":
			errs = append(errs, fmt.Errorf("sessions: -redis %q: empty node name", item))
			continue
		case seen[name]:
			errs = append(errs, fmt.Errorf("sessions: -redis: node %q given twice", name))
			continue
		}
		seen[name] = true
		specs = append(specs, nodeSpec{name: name, opts: &redis.Options{Addr: addr}})
	}
	return specs, errors.Join(errs...)
}

// node is one Redis server as the store sees it: its client, the circuit breaker every call to
// it goes through, and whether the membership loop has it on the ring.
type node struct {
	name    string
	addr    string
	client  *redis.Client
	breaker *breaker.Breaker
	timeout time.Duration

	// inRing is written only by the membership loop; the admin view reads it.
	inRing atomic.Bool
}

// newNode makes the client and the breaker of one node. The breaker is the node's availability
// signal: it trips after three failed calls in a row (a dead node fails every call, so with the
// health check running this takes three health-check intervals at most) or a 50 % failure rate
// over the last 20 calls, stays open for cfg.breakerOpen (doubling while probes keep failing),
// then lets one probe through. Each state change wakes the membership loop through kick.
func newNode(s nodeSpec, cfg config, kick chan<- struct{}) (*node, error) {
	opts := *s.opts
	// One attempt per call, bounded in time: the breaker, not go-redis's retries, decides what a
	// node that keeps failing deserves, and a slow node must not hold a request for long.
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	opts.DialTimeout = cmp.Or(opts.DialTimeout, cfg.opTimeout)
	opts.ReadTimeout = cmp.Or(opts.ReadTimeout, cfg.opTimeout)
	opts.WriteTimeout = cmp.Or(opts.WriteTimeout, cfg.opTimeout)
	opts.ContextTimeoutEnabled = true

	br, err := breaker.New(breaker.Options{
		Name:                s.name,
		WindowSize:          20,
		MinCalls:            10,
		ConsecutiveFailures: 3,
		OpenBackoff:         breaker.Backoff{Initial: cfg.breakerOpen, Max: 8 * cfg.breakerOpen, Jitter: 0.1},
		Hooks: cfg.metrics.nodeHooks(s.name, breaker.Hooks{OnStateChange: func(breaker.StateChangeInfo) {
			select { // hooks must be quick: wake the loop, never wait for it
			case kick <- struct{}{}:
			default:
			}
		}}),
		Logger: cfg.logger.With("node", s.name),
	})
	if err != nil {
		return nil, fmt.Errorf("sessions: breaker of %s: %w", s.name, err)
	}
	return &node{name: s.name, addr: s.opts.Addr, client: redis.NewClient(&opts), breaker: br, timeout: cfg.opTimeout}, nil
}

// nodeKey names a node on the ring: the ring hashes this string, never the address.
func nodeKey(n *node) string { return n.name }

// Close closes the node's connections.
func (n *node) Close() error { return n.client.Close() }

// call runs fn on the node through its breaker with the node's deadline. While the breaker is open
// it fails at once with an error matching breaker.ErrOpen, without touching the network.
func call[T any](ctx context.Context, n *node, fn func(ctx context.Context, c *redis.Client) (T, error)) (T, error) {
	v, err := breaker.Do(ctx, n.breaker, func(ctx context.Context) (T, error) {
		ctx, cancel := context.WithTimeout(ctx, n.timeout)
		defer cancel()
		return fn(ctx, n.client)
	})
	if err != nil {
		return v, fmt.Errorf("%s: %w", n.name, err)
	}
	return v, nil
}

// get returns the value of key, or nil when the node does not hold it. A miss is a success for
// the breaker: the node answered.
func (n *node) get(ctx context.Context, key string) ([]byte, error) {
	return call(ctx, n, func(ctx context.Context, c *redis.Client) ([]byte, error) {
		b, err := c.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		return b, err
	})
}

func (n *node) set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	_, err := call(ctx, n, func(ctx context.Context, c *redis.Client) (string, error) {
		return c.Set(ctx, key, value, ttl).Result()
	})
	return err
}

func (n *node) del(ctx context.Context, key string) (int64, error) {
	return call(ctx, n, func(ctx context.Context, c *redis.Client) (int64, error) {
		return c.Del(ctx, key).Result()
	})
}

func (n *node) ping(ctx context.Context) error {
	_, err := call(ctx, n, func(ctx context.Context, c *redis.Client) (string, error) {
		return c.Ping(ctx).Result()
	})
	return err
}

// countKeys returns the number of keys in the node's database (the store's keys, as long as the
// database is the store's own).
func (n *node) countKeys(ctx context.Context) (int64, error) {
	return call(ctx, n, func(ctx context.Context, c *redis.Client) (int64, error) {
		return c.DBSize(ctx).Result()
	})
}

// purge deletes every key under prefix, in batches of SCAN, and returns how many it deleted. The
// membership loop runs it before a node rejoins the ring, because the node missed every login and
// logout while it was out: a copy it still holds may be a session that was logged out since.
// Only the store's keys go, so the database may be shared with other data.
func (n *node) purge(ctx context.Context, prefix string) (int, error) {
	deleted := 0
	var cursor uint64
	for {
		page, err := call(ctx, n, func(ctx context.Context, c *redis.Client) (scanPage, error) {
			keys, next, err := c.Scan(ctx, cursor, prefix+"*", 500).Result()
			if err == nil && len(keys) > 0 {
				err = c.Unlink(ctx, keys...).Err()
			}
			return scanPage{keys, next}, err
		})
		if err != nil {
			return deleted, err
		}
		deleted += len(page.keys)
		if cursor = page.next; cursor == 0 {
			return deleted, nil
		}
	}
}

// scanPage is one page of SCAN: the keys and the cursor of the next page (0 after the last).
type scanPage struct {
	keys []string
	next uint64
}
