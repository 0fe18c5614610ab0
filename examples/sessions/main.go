// Command sessions is an HTTP session store sharded over several Redis nodes that survives the
// loss of a node. It is built from girder's packages:
//
//   - shard: a consistent-hash ring over the node names places every session; LocateN gives the
//     key's N successors (default 2), so each session lives on two nodes, and Scatter fans
//     logouts and statistics out to every node at once;
//   - breaker: one circuit breaker per node is that node's availability signal. Every Redis call
//     goes through it; when it trips, a membership loop takes the node off the ring (only the
//     keys it owned move) and, once a health-check probe closes it again, purges the node's stale
//     copies and puts it back;
//   - ratelimit: logins are limited per user name by HTTP middleware over a keyed token bucket.
//
// With -cluster host:port,… it keeps each session once on a Redis Cluster instead, and leaves
// placement, replication and failover to the cluster: no ring, no node breakers.
//
// With neither -redis nor -cluster it starts -nodes miniredis servers in process, which the admin
// endpoints can kill and revive:
//
//	go run ./examples/sessions
//	curl -X POST -d user=alice localhost:8080/login
//	curl -X POST localhost:8080/admin/nodes/node-1/kill
//
// See README.md for the endpoints and what to look at.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/girder-go/girder/ratelimit"
)

// config is everything the service can be told. The zero value of a field means the default that
// withDefaults fills in, so a test sets only what it cares about.
type config struct {
	addr  string   // listen address of the API and /admin/; ":0" picks a port
	nodes int      // embedded miniredis servers started when redis is empty
	redis []string // real nodes as "host:port" or "name=host:port"; empty means embedded ones

	// cluster, when set, replaces the ring: seed nodes of one Redis Cluster, "host:port".
	cluster []string
	// clusterOpts, when set, replaces cluster: the integration test passes options that dial
	// the containers of its cluster.
	clusterOpts *redis.ClusterOptions

	replicas    int           // copies of every session, on that many successive ring nodes (not in cluster mode)
	ttl         time.Duration // lifetime of a session
	healthEvery time.Duration // interval of the health check that pings every node
	opTimeout   time.Duration // deadline of one Redis call (dial, read or write)
	breakerOpen time.Duration // how long a tripped breaker waits before its first probe
	loginRate   int           // logins per user per minute; negative turns the limit off

	logger  *slog.Logger // nil is silent
	metrics *metrics     // made by run, served on /metrics; nil in tests that build nodes alone

	// specs, when set, replaces redis: the integration test passes clients that follow a
	// container across Stop and Start.
	specs []nodeSpec
}

func (c config) withDefaults() config {
	if c.addr == "" {
		c.addr = "127.0.0.1:8080"
	}
	if c.nodes == 0 && len(c.redis) == 0 && len(c.specs) == 0 && !c.clusterMode() {
		c.nodes = 3
	}
	if c.replicas == 0 {
		c.replicas = 2
	}
	if c.ttl == 0 {
		c.ttl = 24 * time.Hour
	}
	if c.healthEvery == 0 {
		c.healthEvery = 500 * time.Millisecond
	}
	if c.opTimeout == 0 {
		c.opTimeout = 500 * time.Millisecond
	}
	if c.breakerOpen == 0 {
		c.breakerOpen = 2 * time.Second
	}
	if c.loginRate == 0 {
		c.loginRate = 10
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// clusterMode reports whether the sessions live on a Redis Cluster rather than on the ring.
func (c config) clusterMode() bool { return len(c.cluster) > 0 || c.clusterOpts != nil }

// validate reports every problem at once, as girder's constructors do.
func (c config) validate() error {
	var errs []error
	if c.nodes < 0 {
		errs = append(errs, fmt.Errorf("sessions: -nodes %d is negative", c.nodes))
	}
	if c.replicas < 1 {
		errs = append(errs, fmt.Errorf("sessions: -replicas %d must be at least 1", c.replicas))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"-ttl", c.ttl}, {"-health-every", c.healthEvery}, {"-op-timeout", c.opTimeout}, {"-breaker-open", c.breakerOpen}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("sessions: %s %v must be positive", d.flag, d.v))
		}
	}
	if _, err := parseNodes(c.redis); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseCluster(c.cluster); err != nil {
		errs = append(errs, err)
	}
	if c.clusterMode() && len(c.redis) > 0 {
		errs = append(errs, errors.New("sessions: -redis and -cluster exclude each other: a ring over independent nodes, or one cluster"))
	}
	return errors.Join(errs...)
}

func main() {
	var cfg config
	var redisAddrs, clusterAddrs string
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "listen address of the API and /admin/")
	flag.IntVar(&cfg.nodes, "nodes", 3, "embedded miniredis nodes to start when -redis is empty")
	flag.StringVar(&redisAddrs, "redis", "", "comma-separated real Redis nodes, host:port or name=host:port (instead of embedded ones)")
	flag.StringVar(&clusterAddrs, "cluster", "", "comma-separated seed nodes of a Redis Cluster, host:port (instead of a ring of nodes)")
	flag.IntVar(&cfg.replicas, "replicas", 2, "copies of every session, on successive nodes of the ring")
	flag.DurationVar(&cfg.ttl, "ttl", 24*time.Hour, "lifetime of a session")
	flag.DurationVar(&cfg.healthEvery, "health-every", 500*time.Millisecond, "interval of the health check that pings every node")
	flag.DurationVar(&cfg.opTimeout, "op-timeout", 500*time.Millisecond, "deadline of one Redis call")
	flag.DurationVar(&cfg.breakerOpen, "breaker-open", 2*time.Second, "how long a tripped node breaker waits before probing the node again")
	flag.IntVar(&cfg.loginRate, "login-rate", 10, "logins per user per minute (-1: unlimited)")
	flag.Parse()
	if redisAddrs != "" {
		cfg.redis = strings.Split(redisAddrs, ",")
	}
	if clusterAddrs != "" {
		cfg.cluster = strings.Split(clusterAddrs, ",")
	}
	cfg.logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	// go-redis logs every failed dial on its own; the breakers already say which node is down.
	redis.SetLogger(redisLogger{cfg.logger.With("component", "go-redis")})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, cfg, func(addr string) {
		cfg.logger.Info("sessions listening", "addr", addr, "admin", "http://"+addr+"/admin/nodes")
	})
	if err != nil {
		cfg.logger.Error("sessions stopped", "err", err)
		os.Exit(1)
	}
}

// run connects to the nodes (embedded ones unless cfg.redis is set), builds the ring and its
// membership loop, or, in cluster mode, connects to the cluster; it serves the API, calls ready
// with the address it listens on, and serves until ctx is done. It then shuts down in dependency
// order: the HTTP server (draining requests in flight), the login limiter's sweeper, the
// membership loop, the Redis clients, the embedded servers. It returns nil after a clean shutdown.
func run(ctx context.Context, cfg config, ready func(addr string)) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	log := cfg.logger
	m, err := newMetrics()
	if err != nil {
		return err
	}
	cfg.metrics = m
	a := &api{log: log, metrics: cfg.metrics}

	if cfg.clusterMode() {
		client := newClusterClient(cfg)
		defer client.Close()
		pctx, cancel := context.WithTimeout(ctx, cfg.opTimeout)
		if err := client.Ping(pctx).Err(); err != nil {
			// Not fatal: requests answer 503 until the cluster answers.
			log.Warn("redis cluster not reachable yet", "err", err)
		}
		cancel()
		cs := &clusterStore{client: client, ttl: cfg.ttl, timeout: cfg.opTimeout}
		a.store, a.cluster = cs, cs
	} else {
		cleanup, err := startRing(cfg, a)
		defer cleanup()
		if err != nil {
			return err
		}
	}

	var limiter *ratelimit.Keyed
	if cfg.loginRate > 0 {
		if limiter, err = ratelimit.NewKeyed(ratelimit.KeyedOptions{Limit: ratelimit.PerMinute(cfg.loginRate)}); err != nil {
			return fmt.Errorf("sessions: login limiter: %w", err)
		}
		defer limiter.Close()
	}
	handler, err := routes(a, limiter)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("sessions: listen: %w", err)
	}
	srv := &http.Server{Handler: cfg.metrics.http.Handler(handler), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	if a.cluster != nil {
		log.Info("sessions ready", "addr", addr, "cluster", true)
	} else {
		log.Info("sessions ready", "addr", addr, "nodes", len(a.members.nodes), "replicas", cfg.replicas, "embedded", a.fleet != nil)
	}
	if ready != nil {
		ready(addr)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("sessions: serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("sessions: shutdown: %w", err)
	}
	log.Info("sessions stopped")
	return runErr
}

// startRing starts the embedded servers (unless cfg names real nodes), the nodes' clients and
// breakers, the ring and its membership loop, and sets them in a. cleanup stops what was started,
// in the reverse order, and must be called even when err is not nil.
func startRing(cfg config, a *api) (cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for _, f := range slices.Backward(undo) {
			f()
		}
	}
	log := cfg.logger
	specs := cfg.specs
	var fleet *embedded
	switch {
	case len(specs) > 0:
	case len(cfg.redis) > 0:
		specs, _ = parseNodes(cfg.redis) // validated above
	default:
		if fleet, err = startEmbedded(cfg.nodes, log); err != nil {
			return cleanup, err
		}
		undo = append(undo, fleet.Close)
		specs = fleet.specs()
	}

	// kick lets a breaker that changes state wake the membership loop at once instead of at its
	// next health check.
	kick := make(chan struct{}, 1)
	nodes := make([]*node, 0, len(specs))
	undo = append(undo, func() {
		for _, n := range nodes {
			n.Close()
		}
	})
	for _, s := range specs {
		n, err := newNode(s, cfg, kick)
		if err != nil {
			return cleanup, err
		}
		nodes = append(nodes, n)
	}

	if err := cfg.metrics.watch(nodes); err != nil {
		return cleanup, err
	}
	mem, err := startMembership(nodes, cfg, kick)
	if err != nil {
		return cleanup, err
	}
	undo = append(undo, func() { mem.Close() })
	store := &Store{ring: mem.ring, replicas: cfg.replicas, ttl: cfg.ttl, log: log}
	a.store, a.ring, a.members, a.fleet = store, store, mem, fleet
	return cleanup, nil
}

// redisLogger sends go-redis's internal messages to slog at debug level.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}
