// Command userservice is an HTTP JSON service for users built from girder's packages, in the
// shape the articles on scaling web services describe:
//
//   - cache: reads are cache-aside through L1 (in process, otter) and L2 (Redis), loading from the
//     database on a miss of both; writes are write-through, and a Redis pub/sub broadcast drops
//     the written key from every other instance's L1;
//   - replica: the database is a PostgreSQL primary with streaming replicas; writes go to the
//     primary, reads to a fit replica, and a read after the client's own write carries the write's
//     WAL position (an LSN token, sent back in a header and a cookie) so it cannot be stale;
//   - breaker: every database call passes a circuit breaker, so an outage fails fast while cached
//     users are still served;
//   - ratelimit: each client (API key or IP) has a token bucket kept in Redis, shared by every
//     instance, and answers carry the RateLimit headers (429 with Retry-After when over);
//   - tracing: every request runs in a server span continuing the caller's W3C trace, with child
//     spans for the database and the mailer; spans are kept for GET /debug/spans;
//   - eventbus: a create publishes user.created, which a welcome-mail subscriber turns into a
//     mail in the outbox (GET /debug/outbox).
//
// With no flags it needs no servers: the users live in memory and Redis is miniredis, in process.
//
//	go run ./examples/userservice
//	go run ./examples/userservice -postgres postgres://... -replicas postgres://...,postgres://... -redis localhost:6379
//
// See README.md for the endpoints and what to look at.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/girder-go/girder/ratelimit"
	"github.com/girder-go/girder/ratelimit/redislimit"
	"github.com/girder-go/girder/tracing/otelbridge"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// config is everything the service can be told. A zero field means the default withDefaults
// fills in, so a test sets only what it cares about.
type config struct {
	addr     string   // listen address; ":0" picks a free port
	postgres string   // primary's connection string; "" means users in memory
	replicas []string // replicas' connection strings (needs postgres)
	redis    string   // Redis host:port; "" means miniredis in process

	rate           float64        // requests per second per client
	trustedProxies []netip.Prefix // proxies whose X-Forwarded-For entries name the client
	burst          int            // requests a client may send at once
	adaptiveMax    int            // ceiling of the adaptive concurrency limit (overload.go); 0 is 1000, <0 off

	l1TTL, l2TTL, negTTL time.Duration // cache lifetimes (see usersOptions)
	dbTimeout            time.Duration // bound of one database call
	breakerOpen          time.Duration // how long the open breaker waits before probing
	checkEvery           time.Duration // replica health and lag checks
	maxLag               time.Duration // replicas further behind get no reads
	rywWait              time.Duration // how long a read with a token waits for a replica

	spanBuffer   int           // spans kept for /debug/spans
	traceJSON    io.Writer     // also print spans as JSON lines here; nil means not
	batchTimeout time.Duration // longest a span waits before export

	logger *slog.Logger // nil is silent
	store  userStore    // tests: a store shared by two instances; nil means built from the flags
}

func (c config) withDefaults() config {
	if c.addr == "" {
		c.addr = "127.0.0.1:8080"
	}
	if c.rate == 0 {
		c.rate = 10
	}
	if c.burst == 0 {
		c.burst = 20
	}
	if c.l1TTL == 0 {
		c.l1TTL = time.Minute
	}
	if c.l2TTL == 0 {
		c.l2TTL = 10 * time.Minute
	}
	if c.negTTL == 0 {
		c.negTTL = 5 * time.Second
	}
	if c.dbTimeout == 0 {
		c.dbTimeout = 2 * time.Second
	}
	if c.breakerOpen == 0 {
		c.breakerOpen = 5 * time.Second
	}
	if c.checkEvery == 0 {
		c.checkEvery = time.Second
	}
	if c.maxLag == 0 {
		c.maxLag = 10 * time.Second
	}
	if c.rywWait == 0 {
		c.rywWait = 100 * time.Millisecond
	}
	if c.spanBuffer == 0 {
		c.spanBuffer = 1000
	}
	if c.batchTimeout == 0 {
		c.batchTimeout = time.Second
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate reports every problem at once, as girder's constructors do.
func (c config) validate() error {
	var errs []error
	if len(c.replicas) > 0 && c.postgres == "" {
		errs = append(errs, errors.New("userservice: -replicas needs -postgres"))
	}
	if c.rate <= 0 || c.burst < 1 {
		errs = append(errs, fmt.Errorf("userservice: -rate %v and -burst %d must be positive", c.rate, c.burst))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"-l1-ttl", c.l1TTL}, {"-l2-ttl", c.l2TTL}, {"-negative-ttl", c.negTTL}, {"-db-timeout", c.dbTimeout},
		{"-breaker-open", c.breakerOpen}, {"-check-every", c.checkEvery}, {"-max-lag", c.maxLag},
		{"-ryw-wait", c.rywWait}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("userservice: %s %v is negative", d.flag, d.v))
		}
	}
	if c.spanBuffer < 1 {
		errs = append(errs, fmt.Errorf("userservice: -spans %d must be positive", c.spanBuffer))
	}
	return errors.Join(errs...)
}

func main() {
	var cfg config
	var replicas string
	var traceJSON bool
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "listen address")
	flag.StringVar(&cfg.postgres, "postgres", "", "PostgreSQL primary connection string (default: users in memory)")
	flag.StringVar(&replicas, "replicas", "", "comma-separated connection strings of streaming replicas of -postgres")
	flag.StringVar(&cfg.redis, "redis", "", "Redis host:port (default: miniredis in process)")
	flag.Float64Var(&cfg.rate, "rate", 10, "requests per second per client (API key or IP)")
	flag.IntVar(&cfg.burst, "burst", 20, "requests a client may send at once")
	flag.IntVar(&cfg.adaptiveMax, "adaptive-max", 0, "ceiling of the adaptive concurrency limit that sheds with 503 what the service cannot serve in time (0: 1000; -1: off)")
	trusted := flag.String("trusted-proxies", os.Getenv(trustedProxiesEnv), "comma-separated addresses or prefixes of the proxies in front, whose X-Forwarded-For entries are believed (default $"+trustedProxiesEnv+"; none: key by the peer address)")
	flag.DurationVar(&cfg.l1TTL, "l1-ttl", time.Minute, "life of a user in the in-process cache")
	flag.DurationVar(&cfg.l2TTL, "l2-ttl", 10*time.Minute, "life of a user in Redis")
	flag.DurationVar(&cfg.negTTL, "negative-ttl", 5*time.Second, "how long an unknown ID is remembered")
	flag.DurationVar(&cfg.dbTimeout, "db-timeout", 2*time.Second, "bound of one database call")
	flag.DurationVar(&cfg.breakerOpen, "breaker-open", 5*time.Second, "how long the open breaker rejects calls before probing")
	flag.DurationVar(&cfg.checkEvery, "check-every", time.Second, "replica health and lag check interval")
	flag.DurationVar(&cfg.maxLag, "max-lag", 10*time.Second, "replicas further behind get no reads")
	flag.DurationVar(&cfg.rywWait, "ryw-wait", 100*time.Millisecond, "how long a read after a write waits for a replica before using the primary")
	flag.IntVar(&cfg.spanBuffer, "spans", 1000, "spans kept for GET /debug/spans")
	flag.BoolVar(&traceJSON, "trace-json", false, "also print every span as a JSON line on stdout")
	flag.Parse()
	if p, err := parseTrustedProxies(*trusted); err != nil {
		fmt.Fprintln(os.Stderr, "userservice:", err)
		os.Exit(2)
	} else {
		cfg.trustedProxies = p
	}
	if replicas != "" {
		cfg.replicas = strings.Split(replicas, ",")
	}
	if traceJSON {
		cfg.traceJSON = os.Stdout
	}
	cfg.logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, cfg, func(addr string) {
		cfg.logger.Info("userservice listening", "url", "http://"+addr+"/users")
	})
	if err != nil {
		cfg.logger.Error("userservice stopped", "err", err)
		os.Exit(1)
	}
}

// run builds the service, calls ready with the address it listens on, and serves until ctx is
// done. Components are built in dependency order and closed in reverse by the defers: the HTTP
// server first (draining requests), then the cache, the event bus (draining the mailer), the
// database, Redis, and the tracer last, so that it exports the spans everything else ended.
func run(ctx context.Context, cfg config, ready func(addr string)) (err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	log := cfg.logger
	// Closing must not be cut short by the ctx that asked for it.
	closeCtx := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	}

	m, err := newMetrics()
	if err != nil {
		return err
	}

	spans := newSpanRing(cfg.spanBuffer)
	tracer, err := newTracer(spans, cfg.traceJSON, cfg.batchTimeout, m)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := closeCtx()
		defer cancel()
		err = errors.Join(err, tracer.Shutdown(sctx))
	}()

	// OpenTelemetry instrumentation (otelhttp, redisotel, otelpgx) records through girder's
	// tracer, in the same traces as girder's own spans.
	provider := otelbridge.NewTracerProvider(tracer)
	rdb, err := openRedis(ctx, cfg.redis, log, provider)
	if err != nil {
		return err
	}
	defer rdb.Close()

	s := &server{tracer: tracer, provider: provider, spans: spans, log: log, metrics: m}
	store := cfg.store
	switch {
	case store != nil:
	case cfg.postgres != "":
		if s.pg, err = openPostgres(ctx, cfg.postgres, cfg.replicas, pgOptions{
			checkEvery: cfg.checkEvery, maxLag: cfg.maxLag, rywWait: cfg.rywWait, routed: routed, logger: log, tracing: provider, metrics: m,
		}); err != nil {
			return err
		}
		defer s.pg.Close()
		store = s.pg
	default:
		s.mem = newMemStore()
		store = s.mem
	}
	if ms, ok := store.(*memStore); ok {
		s.mem = ms
	}

	if s.events, err = startEvents(tracer, log, m); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := closeCtx()
		defer cancel()
		err = errors.Join(err, s.events.Close(cctx))
	}()

	if s.users, err = newUsers(usersOptions{
		store: store, redis: rdb.client, created: s.events.created, tracer: tracer,
		l1TTL: cfg.l1TTL, l2TTL: cfg.l2TTL, negTTL: cfg.negTTL,
		dbTimeout: cfg.dbTimeout, breakerOpen: cfg.breakerOpen, logger: log, metrics: m,
	}); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.users.Close()) }()
	// Take no traffic before the cache hears the other instances' invalidations: until then a
	// write elsewhere could leave this instance's memory level stale.
	subCtx, subCancel := context.WithTimeout(ctx, 10*time.Second)
	err = s.users.cache.Subscribed(subCtx)
	subCancel()
	if err != nil {
		return fmt.Errorf("userservice: cache invalidations: %w", err)
	}

	// One token bucket per client, kept in Redis: every instance behind the load balancer counts
	// against the same bucket. If Redis fails, requests are let through (FailOpen).
	limiter, err := redislimit.New(redislimit.Options{
		Client: rdb.client, Limit: ratelimit.Limit{Rate: cfg.rate, Burst: cfg.burst}, Prefix: "ratelimit:users:", Logger: log,
		Hooks: m.limiterHooks(),
	})
	if err != nil {
		return err
	}
	decider, err := m.clientDecider(limiter)
	if err != nil {
		return err
	}
	rateLimitKey, err := newRateLimitKey(cfg.trustedProxies)
	if err != nil {
		return err
	}
	limit, err := ratelimit.Middleware(ratelimit.MiddlewareOptions{Limiter: decider, Key: rateLimitKey, Policy: "users"})
	if err != nil {
		return err
	}
	var adaptive *ratelimit.Adaptive
	if limit, adaptive, err = withOverload(limit, cfg.adaptiveMax); err != nil {
		return err
	}
	if err := m.watchAdaptive(adaptive); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("userservice: listen: %w", err)
	}
	if err := m.watch(s); err != nil {
		return err
	}
	srv := &http.Server{Handler: m.http.Handler(s.routes(limit)), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	log.Info("userservice ready", "addr", addr, "postgres", s.pg != nil, "replicas", len(cfg.replicas), "redis", rdb.addr)
	if ready != nil {
		ready(addr)
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("userservice: serve: %w", err)
	}
	sctx, cancel := closeCtx()
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("userservice: shutdown: %w", err)
	}
	log.Info("userservice stopped")
	return nil
}

// redisConn is the Redis client and, in embedded mode, the miniredis server behind it.
type redisConn struct {
	client *redis.Client
	mini   *miniredis.Miniredis
	addr   string
}

// openRedis connects to addr, or starts miniredis when addr is "".
func openRedis(ctx context.Context, addr string, log *slog.Logger, tp trace.TracerProvider) (*redisConn, error) {
	rc := &redisConn{addr: addr}
	if addr == "" {
		mr, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("userservice: miniredis: %w", err)
		}
		rc.mini, rc.addr = mr, mr.Addr()
		log.Info("embedded redis (miniredis)", "addr", rc.addr)
	}
	rc.client = redis.NewClient(&redis.Options{Addr: rc.addr})
	if err := redisotel.InstrumentTracing(rc.client, redisotel.WithTracerProvider(tp)); err != nil {
		rc.Close()
		return nil, fmt.Errorf("userservice: redis tracing: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rc.client.Ping(pctx).Err(); err != nil {
		rc.Close()
		return nil, fmt.Errorf("userservice: redis %s: %w", rc.addr, err)
	}
	return rc, nil
}

func (rc *redisConn) Close() {
	rc.client.Close()
	if rc.mini != nil {
		rc.mini.Close()
	}
}
