// Command proxy is a load-balancing HTTP reverse proxy built from girder's packages:
//
//   - lb balances requests over the backends (round robin, least connections, P2C peak EWMA, or
//     sticky consistent hashing), keeps unhealthy ones out of rotation with passive and active
//     health checks, and retries idempotent requests on another backend (lb.NewProxy);
//   - breaker puts one circuit breaker in front of each backend, plugged into lb as that
//     backend's availability check;
//   - shard supplies the consistent-hash ring whose Locate is lb's sticky-session placement;
//   - tracing continues the caller's W3C trace through the proxy to the backend.
//
// With no -backends it starts its own backends in process on loopback, each answering with its
// name, which the admin endpoints can kill and revive to show traffic moving:
//
//	go run ./examples/proxy -load 20
//	curl -X POST localhost:8080/admin/backends/backend-2/kill
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
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// config is everything the proxy can be told. The zero value of a field means the default that
// withDefaults fills in, so a test sets only what it cares about.
type config struct {
	addr     string   // listen address of the proxy and its admin endpoints; ":0" picks a port
	embedded int      // number of in-process backends started when backends is empty
	backends []string // base URLs of real backends; empty means embedded ones

	policy       string        // lb policy name, or "sticky"
	stickyHeader string        // request header holding the sticky key
	stickyCookie string        // cookie holding the sticky key when the header is absent
	attempts     int           // backends one idempotent request may try
	retryBodyMax int64         // largest request body buffered so that a retry can resend it; 0 is lb's 64 KiB, <0 none
	retryBudget  float64       // retries per request over lb's 10 s window; 0 is lb's 0.2, <0 no budget
	retryMin     float64       // retries per second allowed whatever the traffic; 0 is lb's 10, <0 none
	hedgeDelay   time.Duration // hedge a GET/HEAD/OPTIONS not answered after this; 0 is off
	hedgeQ       float64       // hedge at this quantile of observed latency instead (0.95); 0 is off
	adaptiveMax  int           // ceiling of the adaptive concurrency limit in front of the backends; 0 is 1000, <0 off

	healthPath   string        // path the active health check GETs on every backend
	probeEvery   time.Duration // active health check interval
	probeTimeout time.Duration // deadline of one probe
	ejectFor     time.Duration // passive health: how long a failing backend stays out
	breakerOpen  time.Duration // how long a tripped breaker stays open before it probes
	slowStart    time.Duration // ramp-up of a backend that comes back; 0 is off

	trace    string    // "" (off), "json" (JSON lines to traceOut) or an OTLP/HTTP traces URL
	traceOut io.Writer // where "json" spans go; nil means os.Stderr

	load   int           // requests per second of the built-in load generator; 0 is off
	report time.Duration // interval of the traffic report in the log; 0 is off

	clientRate     float64 // requests per second per client; 0 is no limit
	trustedProxies string  // addresses or prefixes of proxies in front, whose X-Forwarded-For is believed

	logger  *slog.Logger // nil is silent
	metrics *metrics     // made by run, served on /metrics; nil in tests that build parts alone
}

func (c config) withDefaults() config {
	if c.addr == "" {
		c.addr = "127.0.0.1:8080"
	}
	if c.embedded == 0 && len(c.backends) == 0 {
		c.embedded = 3
	}
	if c.policy == "" {
		c.policy = "round-robin"
	}
	if c.stickyHeader == "" {
		c.stickyHeader = "X-Session"
	}
	if c.stickyCookie == "" {
		c.stickyCookie = "session"
	}
	if c.attempts == 0 {
		c.attempts = 3
	}
	if c.healthPath == "" {
		c.healthPath = "/healthz"
	}
	if c.probeEvery == 0 {
		c.probeEvery = time.Second
	}
	if c.probeTimeout == 0 {
		c.probeTimeout = time.Second
	}
	if c.ejectFor == 0 {
		c.ejectFor = 5 * time.Second
	}
	if c.breakerOpen == 0 {
		c.breakerOpen = 5 * time.Second
	}
	if c.traceOut == nil {
		c.traceOut = os.Stderr
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate reports every problem at once, as girder's constructors do.
func (c config) validate() error {
	var errs []error
	if c.embedded < 0 {
		errs = append(errs, fmt.Errorf("proxy: -embedded %d is negative", c.embedded))
	}
	if _, err := parsePolicy(c.policy); err != nil {
		errs = append(errs, err)
	}
	if c.attempts < 1 {
		errs = append(errs, fmt.Errorf("proxy: -attempts %d must be at least 1", c.attempts))
	}
	if !strings.HasPrefix(c.healthPath, "/") {
		errs = append(errs, fmt.Errorf("proxy: -health-path %q must start with /", c.healthPath))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"-probe-every", c.probeEvery}, {"-probe-timeout", c.probeTimeout}, {"-eject-for", c.ejectFor},
		{"-breaker-open", c.breakerOpen}, {"-slow-start", c.slowStart}, {"-report", c.report}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("proxy: %s %v is negative", d.flag, d.v))
		}
	}
	if c.clientRate < 0 {
		errs = append(errs, fmt.Errorf("proxy: -client-rate %v is negative", c.clientRate))
	}
	if _, err := parsePrefixes(c.trustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.load < 0 {
		errs = append(errs, fmt.Errorf("proxy: -load %d is negative", c.load))
	}
	return errors.Join(errs...)
}

func main() {
	var cfg config
	var backends string
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "listen address of the proxy and /admin/")
	flag.IntVar(&cfg.embedded, "embedded", 3, "in-process backends to start when -backends is empty")
	flag.StringVar(&backends, "backends", "", "comma-separated base URLs of real backends, each optionally name=URL (instead of embedded ones)")
	flag.StringVar(&cfg.policy, "policy", "round-robin",
		"round-robin, weighted-round-robin, random, least-connections, p2c-least-request, p2c-peak-ewma or sticky")
	flag.StringVar(&cfg.stickyHeader, "sticky-header", "X-Session", "header carrying the sticky-session key")
	flag.StringVar(&cfg.stickyCookie, "sticky-cookie", "session", "cookie carrying the sticky-session key when the header is absent")
	flag.IntVar(&cfg.attempts, "attempts", 3, "backends one idempotent request may try")
	flag.Int64Var(&cfg.retryBodyMax, "retry-body-max", 64<<10, "largest request body kept in memory so that a retry can resend it (-1: none)")
	flag.Float64Var(&cfg.retryBudget, "retry-budget", 0.2, "retries allowed per request over a 10 s window, across all requests (-1: no budget)")
	flag.Float64Var(&cfg.retryMin, "retry-min", 10, "retries per second allowed whatever the traffic (-1: none)")
	flag.DurationVar(&cfg.hedgeDelay, "hedge-delay", 0, "send a GET, HEAD or OPTIONS to a second backend when the first has not answered after this (0: no hedging)")
	flag.Float64Var(&cfg.hedgeQ, "hedge-quantile", 0, "hedge at this quantile of observed latency, such as 0.95, with -hedge-delay as the floor (0: fixed delay only)")
	flag.IntVar(&cfg.adaptiveMax, "adaptive-max", 0, "ceiling of the adaptive concurrency limit in front of the backends, which sheds with 503 what they cannot serve in time (0: 1000; -1: off)")
	flag.StringVar(&cfg.healthPath, "health-path", "/healthz", "path the active health check GETs on each backend")
	flag.DurationVar(&cfg.probeEvery, "probe-every", time.Second, "active health check interval")
	flag.DurationVar(&cfg.probeTimeout, "probe-timeout", time.Second, "deadline of one health check")
	flag.DurationVar(&cfg.ejectFor, "eject-for", 5*time.Second, "how long passive health keeps a failing backend out")
	flag.DurationVar(&cfg.breakerOpen, "breaker-open", 5*time.Second, "how long a tripped breaker stays open before it probes")
	flag.DurationVar(&cfg.slowStart, "slow-start", 0, "ramp-up time of a backend that comes back (0: none)")
	flag.StringVar(&cfg.trace, "trace", "", `spans: "" (off), "json" (JSON lines on stderr) or an OTLP/HTTP URL such as http://localhost:4318/v1/traces`)
	flag.IntVar(&cfg.load, "load", 0, "requests per second the built-in load generator sends through the proxy (0: off)")
	flag.DurationVar(&cfg.report, "report", 2*time.Second, "interval of the per-backend traffic report in the log (0: off)")
	flag.Float64Var(&cfg.clientRate, "client-rate", 0, "requests per second per client, burst twice that (0: no limit)")
	flag.StringVar(&cfg.trustedProxies, "trusted-proxies", os.Getenv("PROXY_TRUSTED_PROXIES"),
		"comma-separated addresses or prefixes of proxies in front of this one, whose X-Forwarded-For entries name the client (default $PROXY_TRUSTED_PROXIES)")
	flag.Parse()
	if backends != "" {
		cfg.backends = strings.Split(backends, ",")
	}
	cfg.logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, cfg, func(addr string) {
		cfg.logger.Info("proxy listening", "addr", addr, "admin", "http://"+addr+"/admin/backends")
	})
	if err != nil {
		cfg.logger.Error("proxy stopped", "err", err)
		os.Exit(1)
	}
}

// run starts the backends (embedded ones unless cfg.backends is set), the proxy and its admin
// endpoints, calls ready with the address it listens on, and serves until ctx is done. It then
// shuts down in dependency order: the load generator, the HTTP server (draining requests in
// flight), the balancer (its prober and timers), the tracer (flushing spans), the embedded
// backends. It returns nil after a clean shutdown.
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

	var fl *fleet
	var targets []target
	if len(cfg.backends) == 0 {
		var err error
		if fl, err = startFleet(cfg.embedded, log); err != nil {
			return err
		}
		defer fl.Close()
		targets = fl.targets()
	} else {
		var err error
		if targets, err = parseTargets(cfg.backends); err != nil {
			return err
		}
	}

	tracer, err := newTracer(cfg)
	if err != nil {
		return err
	}
	if tracer != nil {
		defer func() { // last but one: after the proxy has ended its last span
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := tracer.Shutdown(sctx); err != nil {
				log.Warn("tracer shutdown", "err", err)
			}
		}()
	}

	p, err := newProxy(cfg, targets, tracer)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := m.watch(p); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("proxy: listen: %w", err)
	}
	handler, closeLimit, err := clientLimit(routes(p, fl, tracer), cfg.clientRate, cfg.trustedProxies, m)
	if err != nil {
		ln.Close()
		return err
	}
	defer closeLimit()
	srv := &http.Server{Handler: m.http.Handler(handler), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	log.Info("proxy ready", "addr", addr, "policy", cfg.policy, "backends", len(targets), "embedded", fl != nil)
	if ready != nil {
		ready(addr)
	}

	tctx, stopTraffic := context.WithCancel(ctx)
	traffic := startTraffic(tctx, cfg, "http://"+addr, p)

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("proxy: serve: %w", err)
	}
	stopTraffic()
	traffic.Wait()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("proxy: shutdown: %w", err)
	}
	log.Info("proxy stopped")
	return runErr
}
