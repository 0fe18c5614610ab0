// Command orders is an event-driven order pipeline built on girder's eventbus: POST /orders
// publishes order.placed; payments turns it into order.processed; inventory (reserves stock) and
// notifications (sends an e-mail through a breaker) consume that. Failures are retried with
// backoff and end in a dead-letter handler. In process by default; with -mode redis the same
// topics travel over Redis Streams, so API and workers can run as separate processes.
//
//	go run ./examples/orders                                   everything in one process
//	go run ./examples/orders -mode redis                       same, over an embedded miniredis
//	go run ./examples/orders -mode redis -redis HOST:PORT -role api
//	go run ./examples/orders -mode redis -redis HOST:PORT -role worker -addr 127.0.0.1:8081
//
// See README.md for the endpoints and what to watch.
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
	"sync"
	"syscall"
	"time"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/eventstore"
	"github.com/girder-go/girder/eventbus/eventstore/pgstore"
	"github.com/girder-go/girder/tracing"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The transports and roles.
const (
	modeInproc = "inproc"
	modeRedis  = "redis"

	roleAll    = "all"    // API and every consumer group
	roleAPI    = "api"    // HTTP only: places orders, reads state
	roleWorker = "worker" // the consumer groups, plus the read endpoints for inspection
)

// config is everything run needs; main fills it from flags, the smoke test directly.
type config struct {
	addr            string        // HTTP listen address; ":0" picks a free port
	mode            string        // modeInproc or modeRedis
	role            string        // roleAll, roleAPI or roleWorker
	redisAddr       string        // "" in redis mode: an embedded miniredis
	postgresDSN     string        // the event store on PostgreSQL; "": in memory
	consumer        string        // this process's consumer name in every group (redis mode)
	claimIdle       time.Duration // how long another worker's unacknowledged event waits before it is claimed
	mailFailEvery   int           // the flaky mailer fails every n-th attempt; 0 never
	otlpURL         string        // export spans to an OTLP/HTTP collector; "" exports none
	shutdownTimeout time.Duration // per component, on SIGINT/SIGTERM
	logger          *slog.Logger  // nil: slog.Default()

	mailer mailer // nil: the flaky in-memory mailer; the smoke test puts a stuck one here
	// events, if set, is the event store instead of the one postgresDSN names: the smoke test
	// shares one in-memory store between the API and worker instances it runs in one process.
	events eventStore
}

func (c config) validate() error {
	var errs []error
	if c.mode != modeInproc && c.mode != modeRedis {
		errs = append(errs, fmt.Errorf("-mode %q: want %s or %s", c.mode, modeInproc, modeRedis))
	}
	switch c.role {
	case roleAll:
	case roleAPI, roleWorker:
		if c.mode != modeRedis {
			errs = append(errs, fmt.Errorf("-role %s needs -mode redis: in process there is nobody to share the bus with", c.role))
		}
		if c.postgresDSN == "" && c.events == nil {
			errs = append(errs, fmt.Errorf("-role %s needs -postgres: the processes must share the event store the orders live in", c.role))
		}
	default:
		errs = append(errs, fmt.Errorf("-role %q: want %s, %s or %s", c.role, roleAll, roleAPI, roleWorker))
	}
	if c.mode == modeRedis && c.consumer == "" {
		errs = append(errs, errors.New("-consumer must name this process in the consumer groups"))
	}
	if c.redisAddr != "" && c.mode != modeRedis {
		errs = append(errs, errors.New("-redis needs -mode redis"))
	}
	if c.claimIdle <= 0 {
		errs = append(errs, errors.New("-claim-idle must be positive"))
	}
	if c.mailFailEvery < 0 {
		errs = append(errs, errors.New("-mail-fail-every must not be negative"))
	}
	if c.shutdownTimeout <= 0 {
		errs = append(errs, errors.New("-shutdown-timeout must be positive"))
	}
	return errors.Join(errs...)
}

func main() {
	host, _ := os.Hostname()
	var cfg config
	flag.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "HTTP listen address (\":0\" for any free port)")
	flag.StringVar(&cfg.mode, "mode", modeInproc, "event transport: inproc (one process) or redis (Redis Streams)")
	flag.StringVar(&cfg.role, "role", roleAll, "all, api (HTTP only) or worker (consumers); api and worker need -mode redis")
	flag.StringVar(&cfg.redisAddr, "redis", "", "Redis address host:port for -mode redis; empty starts an embedded miniredis")
	flag.StringVar(&cfg.postgresDSN, "postgres", "", "PostgreSQL DSN of the event store, e.g. postgres://user:pass@localhost:5432/db; empty keeps events in memory")
	flag.StringVar(&cfg.consumer, "consumer", fmt.Sprintf("%s-%d", host, os.Getpid()), "this worker's consumer name; keep it across restarts")
	flag.DurationVar(&cfg.claimIdle, "claim-idle", 5*time.Second, "claim events another worker left unacknowledged this long")
	flag.IntVar(&cfg.mailFailEvery, "mail-fail-every", 3, "the simulated mailer fails every n-th attempt (0: never)")
	flag.StringVar(&cfg.otlpURL, "otlp", "", "OTLP/HTTP traces endpoint, e.g. http://localhost:4318/v1/traces")
	flag.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long each component may take to stop")
	flag.Parse()

	cfg.logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, cfg, func(addr string) {
		events := "memory"
		if cfg.postgresDSN != "" {
			events = "postgres"
		}
		cfg.logger.Info("listening", "addr", "http://"+addr, "mode", cfg.mode, "role", cfg.role, "events", events)
	})
	if err != nil {
		cfg.logger.Error("orders stopped", "error", err)
		os.Exit(1)
	}
	cfg.logger.Info("orders stopped cleanly")
}

// run wires the pipeline, serves HTTP until ctx ends, then closes every component in order:
// HTTP first (no new orders), then the outbox and the projection, then the bus (drains queued
// events, or finishes the events in hand and leaves the rest pending in Redis), then Redis, then
// the event store, then the tracer (flushes spans).
func run(ctx context.Context, cfg config, ready func(addr string)) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	logger := cfg.logger
	if logger == nil {
		logger = slog.Default()
	}
	closing := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout)
	}

	prom, err := newMetrics()
	if err != nil {
		return err
	}
	tracer, err := newTracer(cfg, logger, prom)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := closing()
		defer cancel()
		err = errors.Join(err, tracer.Shutdown(cctx))
	}()

	es, closeEvents, err := openEventStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeEvents()) }()
	orders, err := newOrderBook(es, logger, prom)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, orders.close()) }()

	hooks := prom.busHooks(busHooks(logger))
	var (
		st  store
		b   *bus
		who = cfg.consumer
	)
	switch cfg.mode {
	case modeInproc:
		who = "local"
		st = newMemoryStore()
		if b, err = newInprocBus(hooks); err != nil {
			return err
		}
	case modeRedis:
		rdb, closeRedis, cerr := connectRedis(ctx, cfg.redisAddr, logger)
		if cerr != nil {
			return cerr
		}
		defer func() { err = errors.Join(err, closeRedis()) }()
		if st, err = newRedisStore(ctx, rdb); err != nil {
			return err
		}
		if b, err = newRedisBus(rdb, cfg.consumer, cfg.claimIdle, hooks, logger); err != nil {
			return err
		}
	}
	// Registered after the Redis client's close, so it runs before it.
	defer func() {
		cctx, cancel := closing()
		defer cancel()
		err = errors.Join(err, closeBus(cctx, b, cfg.mode, logger))
	}()

	// The read model is rebuilt before the process takes traffic, then kept up by the projection.
	view := orders.projection()
	if err := orders.catchUp(ctx, view); err != nil {
		return fmt.Errorf("rebuild the orders read model: %w", err)
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }() // before the bus closes: the outbox publishes to it
	wg.Go(func() { keepRunning(bg, "orders projection", view.Run, logger) })

	var p *pipeline
	if cfg.role != roleAPI {
		m := cfg.mailer
		if m == nil {
			m = &flakyMailer{store: st, failEvery: int64(cfg.mailFailEvery)}
		}
		p = &pipeline{orders: orders, store: st, bus: b, tracer: tracer, mailer: m, consumer: who, logger: logger}
		if p.breaker, err = newMailerBreaker(logger, &p.opened, prom); err != nil {
			return err
		}
		if err := p.start(ctx); err != nil {
			return err
		}
	}

	// The outbox starts once the consumers are subscribed: in process, an event published to a
	// topic nobody subscribes to yet would reach nobody.
	if cfg.role != roleWorker {
		ob := eventstore.Outbox[orderEvent]{Name: "orders-outbox", Store: es, Checkpoints: es, Filter: publishes,
			Publisher: &outboxPublisher{bus: b, orders: orders, tracer: tracer}}
		wg.Go(func() { keepRunning(bg, "outbox", ob.Run, logger) })
	}

	if err := prom.watch(b, p); err != nil {
		return err
	}
	srv := &server{orders: orders, store: st, bus: b, pipeline: p, tracer: tracer, role: cfg.role, logger: logger, metrics: prom}
	return serve(ctx, cfg, prom.http.Handler(srv.handler()), ready, closing)
}

// keepRunning runs f until ctx ends, restarting it a second after it fails: an outbox whose
// publish failed (Redis down) resumes from its checkpoint, so nothing recorded is skipped.
func keepRunning(ctx context.Context, name string, f func(context.Context) error, logger *slog.Logger) {
	for {
		err := f(ctx)
		if ctx.Err() != nil {
			return
		}
		logger.Error(name+" failed, restarting in 1s", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// openEventStore returns the event store the orders live in: in memory, or on PostgreSQL with
// -postgres (its tables created by Migrate, explicitly, at start), and how to close it.
func openEventStore(ctx context.Context, cfg config, logger *slog.Logger) (eventStore, func() error, error) {
	if cfg.events != nil {
		return cfg.events, func() error { return nil }, nil
	}
	if cfg.postgresDSN == "" {
		m := eventstore.NewMemory()
		return m, func() error { m.Close(); return nil }, nil
	}
	pool, err := pgxpool.New(ctx, cfg.postgresDSN)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: %w", err)
	}
	s, err := pgstore.New(pool, pgstore.Options{Schema: "orders"})
	if err == nil {
		err = s.Migrate(ctx)
	}
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("postgres event store: %w", err)
	}
	logger.Info("event store on PostgreSQL", "schema", "orders")
	return s, func() error { pool.Close(); return nil }, nil
}

// serve listens on cfg.addr, reports the address to ready, and serves until ctx ends or the
// server fails; then it shuts the server down, letting requests in flight finish.
func serve(ctx context.Context, cfg config, h http.Handler, ready func(string), closing func() (context.Context, context.CancelFunc)) error {
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr().String())
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	cctx, cancel := closing()
	defer cancel()
	err = hs.Shutdown(cctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// closeBus closes the transport. Events it could not finish in time are not an error of the
// shutdown: in process they went to the dead-letter handlers (ErrClosed), over Redis they stay
// pending and another worker claims them. Both are logged.
func closeBus(ctx context.Context, b *bus, mode string, logger *slog.Logger) error {
	err := b.close(ctx)
	var ue *eventbus.UndeliveredError
	if errors.As(err, &ue) {
		where := "dead-lettered"
		if mode == modeRedis {
			where = "left pending in Redis for another worker"
		}
		logger.Warn("events not finished at shutdown", "events", ue.Events(), "where", where)
		return nil
	}
	return err
}

// busHooks log every failed attempt, so retries and backoff are visible in the output. The same
// eventbus.Hooks serve both transports.
func busHooks(logger *slog.Logger) eventbus.Hooks {
	return eventbus.Hooks{
		OnFail: func(ctx context.Context, info eventbus.FailInfo) {
			level, msg := slog.LevelWarn, "attempt failed, retrying with backoff"
			if info.Final {
				level, msg = slog.LevelError, "last attempt failed"
			}
			logger.Log(ctx, level, msg, "topic", info.Topic, "subscriber", info.Subscriber,
				"attempt", info.Attempt, "error", info.Err, "trace_id", traceID(ctx))
		},
	}
}

// newTracer returns the tracer. Spans always get IDs (they are logged as trace_id and stored
// with orders and e-mails); with -otlp they are also batched and exported to a collector, and
// the export pipeline is on /metrics.
func newTracer(cfg config, logger *slog.Logger, m *metrics) (*tracing.Tracer, error) {
	opts := tracing.Options{Name: "github.com/girder-go/girder/examples/orders"}
	if cfg.otlpURL != "" {
		exp, err := tracing.NewOTLPExporter(tracing.OTLPOptions{URL: cfg.otlpURL, ServiceName: "orders-" + cfg.role})
		if err != nil {
			return nil, err
		}
		bp, err := tracing.NewBatchProcessor(exp, tracing.BatchOptions{Logger: logger, OnExport: m.onExport()})
		if err != nil {
			return nil, err
		}
		p, err := m.processor(bp)
		if err != nil {
			bp.Close()
			return nil, err
		}
		opts.Processors = []tracing.Processor{p}
	}
	return tracing.New(opts)
}
