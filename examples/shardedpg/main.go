// Command shardedpg shards one PostgreSQL table over several primaries, each with streaming
// replicas: shard's RangeRouter picks the shard of an id, replica's Router picks the server inside
// the shard (writes to the primary, reads to a replica that has replayed the session's last write),
// a list fans out with shard.Scatter and merges, and a range moves to a new shard while traffic
// goes on. See README.md for the servers it needs and how to start them with Docker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/shard"
)

// Config is one run of the example.
type Config struct {
	// Shards are the shards holding ranges at the start; the last one of Shards+1 entries is the
	// target of the move and holds nothing at first.
	Shards    []ShardConfig
	Keys      int64         // ids 0…Keys-1, split evenly over the shards
	Workers   int           // concurrent clients during the move
	Duration  time.Duration // of the traffic; the move starts a third of the way in
	Seed      uint64
	FenceWait time.Duration // Store.FenceWait
	Moves     int           // how many times the range moves (back and forth); 0 is 1
	// Metrics, when not "", is the file the run's metrics are written to at its end, in
	// Prometheus's text format (for node_exporter's textfile collector); "-" is the output.
	Metrics string
}

// Result is what a run measured.
type Result struct {
	Move  MoveReport   // the first move
	Moves []MoveReport // every move, with Config.Moves > 1
	Load  LoadReport
	Check Check
}

const splitDatabase = "girder_split"

func main() {
	primaries := flag.String("primaries", "", "comma-separated DSNs of the shards' primaries (one shard each)")
	replicas := flag.String("replicas", "", "comma-separated DSNs of one streaming replica of each primary, in the same order")
	splitDSN := flag.String("split-primary", "", "DSN of the primary of the shard a range moves to (default: database "+splitDatabase+" on the first primary)")
	splitReplica := flag.String("split-replica", "", "DSN of its replica (default: database "+splitDatabase+" on the first replica)")
	keys := flag.Int64("keys", 3000, "ids 0…keys-1, split evenly over the shards")
	workers := flag.Int("workers", 8, "concurrent clients")
	duration := flag.Duration("duration", 6*time.Second, "how long the traffic runs; the move starts a third of the way in")
	moves := flag.Int("moves", 1, "how many times the range moves, back and forth")
	fenceWait := flag.Duration("fence-wait", 2*time.Second, "how long a write to the moving range waits before it fails (0: fail at once)")
	seed := flag.Uint64("seed", 0, "seed of the traffic (0: GIRDER_SEED, else the clock)")
	metricsFile := flag.String("metrics", "", `at the end, write the range router's and the replica routers' metrics to this file in Prometheus's text format, as node_exporter's textfile collector reads them ("-": the output)`)
	probeOnly := flag.Bool("probe", false, "only write and read one key of each shard and say which shards answer (after a run has made the table)")
	flag.Parse()

	if *primaries == "" {
		fmt.Fprint(os.Stderr, `shardedpg needs PostgreSQL servers: a primary per shard and a streaming replica of each.
Start three pairs with Docker from girder's test image (README.md, "Servers"), then:

  go run ./examples/shardedpg \
    -primaries  postgres://postgres:girder@127.0.0.1:15430/postgres,postgres://postgres:girder@127.0.0.1:15431/postgres,postgres://postgres:girder@127.0.0.1:15432/postgres \
    -replicas   postgres://postgres:girder@127.0.0.1:15440/postgres,postgres://postgres:girder@127.0.0.1:15441/postgres,postgres://postgres:girder@127.0.0.1:15442/postgres

`)
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg := Config{Keys: *keys, Workers: *workers, Duration: *duration, Seed: pickSeed(*seed), FenceWait: *fenceWait, Moves: *moves, Metrics: *metricsFile}
	var err error
	if cfg.Shards, err = shardConfigs(ctx, split(*primaries), split(*replicas), *splitDSN, *splitReplica); err == nil {
		if *probeOnly {
			err = probe(ctx, os.Stdout, cfg)
		} else {
			_, err = run(ctx, os.Stdout, cfg)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// pickSeed returns flagSeed, else GIRDER_SEED, else one from the clock.
func pickSeed(flagSeed uint64) uint64 {
	if flagSeed != 0 {
		return flagSeed
	}
	if v, err := strconv.ParseUint(os.Getenv("GIRDER_SEED"), 10, 64); err == nil && v != 0 {
		return v
	}
	return uint64(time.Now().UnixNano())
}

// shardConfigs parses the DSNs into shard configurations, the move's target last. Without a
// target DSN the target is a new database on the first primary (created here) and its replica.
func shardConfigs(ctx context.Context, primaries, replicas []string, splitPrimary, splitReplica string) ([]ShardConfig, error) {
	if len(replicas) != len(primaries) {
		return nil, fmt.Errorf("shardedpg: %d primaries but %d replicas: give one replica per primary, in the same order", len(primaries), len(replicas))
	}
	parse := func(dsn string) (*pgxpool.Config, error) {
		c, err := pgxpool.ParseConfig(strings.TrimSpace(dsn))
		if err != nil {
			return nil, fmt.Errorf("shardedpg: DSN %q: %w", dsn, err)
		}
		c.ConnConfig.ConnectTimeout = 5 * time.Second
		return c, nil
	}
	var ps, rs []*pgxpool.Config
	for i := range primaries {
		p, err := parse(primaries[i])
		if err != nil {
			return nil, err
		}
		r, err := parse(replicas[i])
		if err != nil {
			return nil, err
		}
		ps, rs = append(ps, p), append(rs, r)
	}
	if splitPrimary != "" {
		p, err := parse(splitPrimary)
		if err != nil {
			return nil, err
		}
		var r []*pgxpool.Config
		if splitReplica != "" {
			c, err := parse(splitReplica)
			if err != nil {
				return nil, err
			}
			r = append(r, c)
		}
		return ShardConfigs(ps, rs, &ShardConfig{Primary: p, Replicas: r}), nil
	}
	cfgs := ShardConfigs(ps, rs, nil)
	if err := CreateSplitDatabase(ctx, cfgs[len(cfgs)-1]); err != nil {
		return nil, err
	}
	return cfgs, nil
}

// ShardConfigs makes one shard per primary and its replica, and the move's target last: target,
// or a database named girder_split on the first primary and its replica.
func ShardConfigs(primaries, replicas []*pgxpool.Config, target *ShardConfig) []ShardConfig {
	var out []ShardConfig
	for i := range primaries {
		out = append(out, ShardConfig{Name: fmt.Sprintf("shard-%d", i), Primary: primaries[i], Replicas: []*pgxpool.Config{replicas[i]}})
	}
	if target == nil {
		p := primaries[0].Copy()
		p.ConnConfig.Database = splitDatabase
		r := replicas[0].Copy()
		r.ConnConfig.Database = splitDatabase
		target = &ShardConfig{Primary: p, Replicas: []*pgxpool.Config{r}}
	}
	target.Name = fmt.Sprintf("shard-%d", len(primaries))
	return append(out, *target)
}

// CreateSplitDatabase creates the target shard's database on its primary when missing, and waits
// until its replicas have it too.
func CreateSplitDatabase(ctx context.Context, target ShardConfig) error {
	admin := target.Primary.ConnConfig.Copy()
	admin.Database = "postgres"
	c, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("shardedpg: %s: %w", target.Name, err)
	}
	defer c.Close(context.Background())
	db := target.Primary.ConnConfig.Database
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", db).Scan(&n); err != nil {
		return fmt.Errorf("shardedpg: %s: %w", target.Name, err)
	}
	if n == 0 {
		if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
			return fmt.Errorf("shardedpg: %s: create database %s: %w", target.Name, db, err)
		}
	}
	for _, r := range target.Replicas {
		deadline := time.Now().Add(15 * time.Second)
		for {
			rc, err := pgx.ConnectConfig(ctx, r.ConnConfig)
			if err == nil {
				rc.Close(context.Background())
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("shardedpg: %s: replica has no database %s yet: %w", target.Name, db, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// initialRanges splits ids 0…keys-1 evenly over n shards, the first range unbounded below and the
// last above, so every id has a shard.
func initialRanges(keys int64, n int) []shard.Range[int64, int] {
	var rs []shard.Range[int64, int]
	for i := range n {
		r := shard.Range[int64, int]{Start: keys * int64(i) / int64(n), End: keys * int64(i+1) / int64(n), Shard: i}
		r.NoStart, r.NoEnd = i == 0, i == n-1
		rs = append(rs, r)
	}
	return rs
}

// routeLog collects the servers the replica routers chose for requests whose ctx carries it.
type routeLog struct {
	mu     sync.Mutex
	routes []string
}

type routeLogKey struct{}

func (l *routeLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(l.routes, ", ")
	l.routes = nil
	return s
}

func routerOptions() replica.Options {
	return replica.Options{
		CheckInterval: 200 * time.Millisecond,
		// A primary is taken for down after three failed checks in a row, not one: on a busy
		// machine a single check can time out. A write to a stopped primary fails at once anyway
		// (its connection is refused), whatever the checks say.
		DownAfter: 3,
		Hooks: replica.Hooks{OnRoute: func(ctx context.Context, info replica.RouteInfo) {
			if l, _ := ctx.Value(routeLogKey{}).(*routeLog); l != nil {
				l.mu.Lock()
				l.routes = append(l.routes, fmt.Sprintf("%s (%s)", info.Node, info.Reason))
				l.mu.Unlock()
			}
		}},
	}
}

// run is the whole example: routing, read-your-writes, a list, then a move under traffic.
func run(ctx context.Context, w io.Writer, cfg Config) (res Result, err error) {
	n := len(cfg.Shards) - 1
	if n < 2 {
		return res, errors.New("shardedpg: give at least two shards (and the move's target)")
	}
	fmt.Fprintf(w, "seed %d (GIRDER_SEED=%d reproduces the traffic)\n", cfg.Seed, cfg.Seed)
	var prom *metrics
	shards := cfg.Shards
	if cfg.Metrics != "" {
		if prom, err = newMetrics(); err != nil {
			return res, err
		}
		shards = prom.hook(shards)
	}
	s, err := OpenStore(ctx, shards, initialRanges(cfg.Keys, n), routerOptions())
	if err != nil {
		return res, err
	}
	defer s.Close()
	if prom != nil {
		if err := prom.watch(s); err != nil {
			return res, err
		}
		// Written however the run ends, before the store closes: the routers' state is read now.
		defer func() { err = errors.Join(err, prom.write(cfg.Metrics, w)) }()
	}
	s.FenceWait = cfg.FenceWait
	if err := s.Migrate(ctx); err != nil {
		return res, err
	}
	seeded, err := s.Seed(ctx, cfg.Keys)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(w, "%d shards, table version %d, %d accounts seeded:\n", n, s.Table().Version(), seeded)
	printTable(w, s)

	// Routing and read-your-writes.
	log := &routeLog{}
	lctx := context.WithValue(ctx, routeLogKey{}, log)
	sess := NewSession()
	id := cfg.Keys/int64(n) + 2 // an even id on the second shard
	if err := s.Add(lctx, sess, id, 100); err != nil {
		return res, err
	}
	fmt.Fprintf(w, "add 100 to account %d            → %s\n", id, log.take())
	a, err := s.Get(lctx, sess, id)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(w, "read it back in the same session → %s: balance %d\n", log.take(), a.Balance)
	if _, err := s.Get(lctx, nil, id); err != nil {
		return res, err
	}
	fmt.Fprintf(w, "read it without a session        → %s\n", log.take())

	// A move under traffic, from a fresh table: the load knows every balance it should find.
	if _, err := s.Seed(ctx, cfg.Keys); err != nil {
		return res, err
	}
	at := initialRanges(cfg.Keys, n)[1].Start + cfg.Keys/int64(2*n)
	when := "a third of the way in"
	if cfg.Moves > 1 {
		when = fmt.Sprintf("%d times, back and forth,", cfg.Moves)
	}
	fmt.Fprintf(w, "\n%d clients for %v; %s ids from %d of %s move to %s (fence wait %v)\n",
		cfg.Workers, cfg.Duration, when, at, cfg.Shards[1].Name, cfg.Shards[n].Name, cfg.FenceWait)
	load := NewLoad(s, cfg.Workers, cfg.Keys, cfg.Seed)
	lctx2, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		load.Run(lctx2)
	}()
	// The move a third of the way in; with Moves > 1, the range then goes back and forth between
	// the two shards, one move every Duration/(Moves+2).
	var moveErr error
	every := cfg.Duration / time.Duration(max(cfg.Moves, 1)+2)
	first := time.After(cfg.Duration / 3)
	if cfg.Moves > 1 {
		first = time.After(every)
	}
	for i := 0; i < max(cfg.Moves, 1) && moveErr == nil; i++ {
		wait := time.After(every)
		if i == 0 {
			wait = first
		}
		select {
		case <-wait:
		case <-lctx2.Done():
			if i == 0 {
				moveErr = lctx2.Err()
			}
		}
		if moveErr != nil || lctx2.Err() != nil {
			break
		}
		to := n
		if i%2 == 1 {
			to = 1
		}
		var m MoveReport
		if m, moveErr = s.Move(ctx, at, to); moveErr == nil {
			res.Moves = append(res.Moves, m)
		}
	}
	<-done
	if moveErr != nil {
		return res, moveErr
	}
	res.Move = res.Moves[0]
	if len(res.Moves) > 1 {
		var worst time.Duration
		for _, m := range res.Moves {
			worst = max(worst, m.Fence)
		}
		fmt.Fprintf(w, "%d moves back and forth; longest fence %v; the first:\n", len(res.Moves), worst.Round(time.Microsecond))
	}
	m := res.Move
	fmt.Fprintf(w, "moved %s from %s to %s: table version %d\n", m.Range, m.From, m.To, m.Version)
	fmt.Fprintf(w, "  bulk copy %d rows, catch-up %d, under the fence %d; %d rows (checksum %d) equal on both sides; %d deleted from %s\n",
		m.Copied, m.CaughtUp, m.CaughtUpFenced, m.Rows, m.Checksum, m.Deleted, m.From)
	fmt.Fprintf(w, "  writes to the range fenced for %v (of which waiting for the replica %v); whole move %v\n",
		m.Fence.Round(time.Microsecond), m.ReplicaCaughtUp.Round(time.Microsecond), m.Total.Round(time.Millisecond))
	printTable(w, s)

	res.Load = load.Report()
	l := res.Load
	fmt.Fprintf(w, "traffic: %d operations, %d lists; slowest write %v\n", l.Ops, l.Lists, l.SlowestWrite.Round(time.Microsecond))
	fmt.Fprintf(w, "errors seen: %d (refused by the fence, not applied: %d; outcome unknown: %d) over %v\n",
		l.Errors, l.Refused, l.Ambiguous, l.ErrorSpan.Round(time.Microsecond))
	for _, k := range sortedKinds(l.ErrorsByKind) {
		fmt.Fprintf(w, "  %-22s %d\n", k, l.ErrorsByKind[k])
	}
	if l.FirstError != "" {
		fmt.Fprintf(w, "  first: %s\n", l.FirstError)
	}
	for _, b := range l.Wrong {
		fmt.Fprintf(w, "  WRONG: %s\n", b)
	}

	if res.Check, err = load.Verify(ctx); err != nil {
		return res, err
	}
	c := res.Check
	fmt.Fprintf(w, "check: %d rows (acknowledged %d), balance sum %d (acknowledged %d); lost %d, duplicated %d, misplaced %d, unexpected %d, wrong balance %d, not compared %d\n",
		c.Rows, c.Want, c.Sum, c.WantSum, c.Lost, c.Duplicated, c.Misplaced, c.Unexpected, c.WrongBalance, c.Skipped)

	top, err := s.Top(ctx, 5, false)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(w, "top 5 balances over every shard (scatter-gather):")
	for _, a := range top {
		fmt.Fprintf(w, " %d:%d", a.ID, a.Balance)
	}
	fmt.Fprintln(w)
	if !c.OK() || len(l.Wrong) > 0 {
		return res, errors.New("shardedpg: the check failed")
	}
	fmt.Fprintln(w, "OK: nothing lost, nothing duplicated")
	return res, nil
}

// probe writes and reads one key of each range, to show that a shard down fails only its keys.
func probe(ctx context.Context, w io.Writer, cfg Config) error {
	n := len(cfg.Shards) - 1
	rs := initialRanges(cfg.Keys, n)
	s, err := openStore(ctx, cfg.Shards, rs, routerOptions(), false)
	if err != nil {
		return err
	}
	defer s.Close()
	s.OpTimeout = 3 * time.Second
	for _, r := range rs {
		key := r.Start
		if r.NoStart {
			key = r.End - 2
		}
		werr := s.Add(ctx, NewSession(), key, 0)
		_, rerr := s.Get(ctx, nil, key)
		fmt.Fprintf(w, "%s, key %d: write %s; read %s\n", s.shards[r.Shard].Name, key, outcome(werr), outcome(rerr))
	}
	return nil
}

func outcome(err error) string {
	switch {
	case err == nil, errors.Is(err, ErrNotFound):
		return "ok"
	default:
		return "FAILED: " + err.Error()
	}
}

func printTable(w io.Writer, s *Store) {
	for _, r := range s.Table().Ranges() {
		lo, hi := "-∞", "∞"
		if !r.NoStart {
			lo = fmt.Sprint(r.Start)
		}
		if !r.NoEnd {
			hi = fmt.Sprint(r.End)
		}
		fmt.Fprintf(w, "  [%s, %s) → %s\n", lo, hi, s.shards[r.Shard].Name)
	}
}
