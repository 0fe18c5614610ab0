package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/girder-go/girder/breaker"
	"github.com/girder-go/girder/cache"
	"github.com/girder-go/girder/cache/rediscache"
	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/tracing"
	"github.com/redis/go-redis/v9"
)

// users is the core of the service, where girder's packages meet:
//
//   - reads go through a two-level cache (cache): L1 in process on otter, L2 in Redis shared by
//     every instance, and on a miss of both the Loader, which reads the store of record;
//   - writes go through the same cache (write-through): the Writer saves to the store of record
//     first, then the cache stores the new value in L1 and L2 and broadcasts the key over Redis
//     pub/sub so that the other instances drop their L1 copy;
//   - every call to the store of record passes a circuit breaker (breaker) and runs in a client
//     span (tracing);
//   - a create publishes user.created (eventbus).
//
// The packages do not know each other: the Loader and Writer are two closures, the breaker wraps
// them, the cache's hooks write span events.
type users struct {
	store     userStore
	breaker   *breaker.Breaker
	cache     *cache.Cache[int64, User]
	l1        *cache.Memory[int64, User]
	l2        *rediscache.Store[int64, User]
	created   eventbus.Publisher[UserCreated]
	tracer    *tracing.Tracer
	dbTimeout time.Duration
	log       *slog.Logger
}

// usersOptions configures newUsers.
type usersOptions struct {
	store       userStore
	redis       redis.UniversalClient
	created     eventbus.Publisher[UserCreated]
	tracer      *tracing.Tracer
	l1TTL       time.Duration // life of an entry in process; other instances' writes drop it sooner
	l2TTL       time.Duration // life of an entry in Redis
	negTTL      time.Duration // how long "no such user" is remembered
	dbTimeout   time.Duration // bound of one call to the store of record
	breakerOpen time.Duration // how long the open breaker rejects calls before it probes
	logger      *slog.Logger
	metrics     *metrics // hooks the breaker; nil for none
}

// newUsers builds the breaker, the two cache levels, the broadcast and the cache over o.store.
func newUsers(o usersOptions) (s *users, err error) {
	s = &users{store: o.store, created: o.created, tracer: o.tracer, dbTimeout: o.dbTimeout, log: o.logger}
	defer func() { // on failure, close what was made
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	s.breaker, err = breaker.New(breaker.Options{
		Name:                "database",
		WindowSize:          20,
		MinCalls:            5,
		ConsecutiveFailures: 5,
		OpenBackoff:         breaker.Backoff{Initial: o.breakerOpen, Jitter: 0.1}, // instances that tripped together do not probe together
		// A user that does not exist is an answer, not a failure of the database.
		IsFailure: func(err error) bool { return !errors.Is(err, errNoUser) },
		Hooks:     o.metrics.breakerHooks(),
		Logger:    o.logger,
	})
	if err != nil {
		return s, err
	}
	// RecordStats feeds Cache.Stats, where /debug/stats shows the L1 hits.
	if s.l1, err = cache.NewMemory(cache.MemoryOptions[int64, User]{MaxSize: 100_000, RecordStats: true}); err != nil {
		return s, err
	}
	if s.l2, err = rediscache.New(rediscache.Options[int64, User]{Client: o.redis, Prefix: "users:"}); err != nil {
		return s, err
	}
	bc, err := rediscache.NewBroadcast(rediscache.BroadcastOptions[int64]{Client: o.redis, Channel: "users:invalidate"})
	if err != nil {
		return s, err
	}
	s.cache, err = cache.New(cache.Options[int64, User]{
		Levels: []cache.Level[int64, User]{
			{Name: "memory", Store: s.l1, TTL: o.l1TTL, Jitter: 0.1},
			{Name: "redis", Store: s.l2, TTL: o.l2TTL, Jitter: 0.1},
		},
		Loader: cache.LoaderFunc[int64, User](s.load),
		Writer: cache.WriterFuncs[int64, User]{WriteFunc: s.save, DeleteFunc: s.remove},
		// Safe here because every create goes through Set, which overwrites a remembered absence
		// in every level and, by the broadcast, in every instance's L1.
		NegativeTTL: o.negTTL,
		Broadcast:   bc,
		Hooks: o.metrics.cacheHooks(cache.Hooks[int64]{
			OnHit:   func(ctx context.Context, i cache.LevelInfo[int64]) { observe(ctx, "cache.hit", i.Level) },
			OnMiss:  func(ctx context.Context, i cache.LevelInfo[int64]) { observe(ctx, "cache.miss", i.Level) },
			OnLoad:  func(ctx context.Context, _ cache.LoadInfo[int64]) { observe(ctx, "cache.load", "database") },
			OnError: func(ctx context.Context, i cache.ErrorInfo[int64]) { s.cacheError(ctx, i.Key, i.Err) },
		}),
		Logger: o.logger,
	})
	if err != nil {
		return s, err
	}
	return s, o.metrics.watchCache(s.cache, s.l1)
}

// Close stops the cache's invalidation listener, then the stores it used (the Redis client and the
// store of record are the caller's).
func (s *users) Close() error {
	var errs []error
	if s.cache != nil {
		errs = append(errs, s.cache.Close())
	}
	if s.l1 != nil {
		errs = append(errs, s.l1.Close())
	}
	if s.l2 != nil {
		errs = append(errs, s.l2.Close())
	}
	return errors.Join(errs...)
}

// Get reads a user through the cache: L1, L2, then the store of record (cache-aside). A token in
// ctx reaches the store if the read gets that far (the load keeps ctx's values).
func (s *users) Get(ctx context.Context, id int64) (User, error) {
	u, err := s.cache.Get(ctx, id)
	if errors.Is(err, cache.ErrNotFound) {
		return User{}, errNoUser
	}
	return u, err
}

// GetFresh reads a user from the store of record, bypassing the cache (Cache-Control: no-cache).
// With a token in ctx the replica router sends it to a node that has the client's last write.
func (s *users) GetFresh(ctx context.Context, id int64) (User, error) {
	setSource(ctx, "bypass")
	return dbCall(ctx, s, "get", id, func(ctx context.Context) (User, error) { return s.store.Get(ctx, id) })
}

// Create allocates an ID, writes the user through the cache and publishes user.created. The
// returned token lets the client's next read see the user even on a replica.
func (s *users) Create(ctx context.Context, in userInput) (User, replica.Token, error) {
	id, err := dbCall(ctx, s, "next id", 0, s.store.NextID)
	if err != nil {
		return User{}, replica.Token{}, err
	}
	t := now()
	u := User{ID: id, Name: in.Name, Email: in.Email, CreatedAt: t, UpdatedAt: t}
	tok, err := s.write(ctx, u)
	if err != nil {
		return User{}, replica.Token{}, err
	}
	// The user exists whatever happens to the event; a lost event costs a welcome e-mail, and the
	// log says so. A transactional outbox in the database would make it exactly-once.
	if err := s.created.Publish(ctx, UserCreated{ID: u.ID, Name: u.Name, Email: u.Email, At: u.CreatedAt}); err != nil {
		s.log.Warn("user.created not published", "user", u.ID, "err", err)
	}
	return u, tok, nil
}

// Update replaces a user's name and e-mail: read (through the cache), then write through it.
func (s *users) Update(ctx context.Context, id int64, in userInput) (User, replica.Token, error) {
	u, err := s.Get(ctx, id)
	if err != nil {
		return User{}, replica.Token{}, err
	}
	u.Name, u.Email, u.UpdatedAt = in.Name, in.Email, now()
	tok, err := s.write(ctx, u)
	if err != nil {
		return User{}, replica.Token{}, err
	}
	return u, tok, nil
}

// receipt is how the Writer, which returns only an error, hands the write's token back to the
// handler: the handler puts one in ctx, the Writer fills it on the same goroutine.
type receipt struct {
	token   replica.Token
	written bool
}

type receiptKey struct{}

// write saves u through the cache. Once the store of record has the write, a failure of a cache
// level is not the client's failure: Set has already removed the key from that level, so it
// cannot serve the old value, and the next read loads the new one.
func (s *users) write(ctx context.Context, u User) (replica.Token, error) {
	rc := &receipt{}
	err := s.cache.Set(context.WithValue(ctx, receiptKey{}, rc), u.ID, u)
	if err != nil && rc.written {
		s.log.Warn("user saved, cache not updated", "user", u.ID, "err", err)
		return rc.token, nil
	}
	return rc.token, err
}

// load is the cache's Loader: the store of record behind the breaker.
func (s *users) load(ctx context.Context, id int64) (User, error) {
	u, err := dbCall(ctx, s, "get", id, func(ctx context.Context) (User, error) { return s.store.Get(ctx, id) })
	if errors.Is(err, errNoUser) {
		return User{}, cache.ErrNotFound
	}
	return u, err
}

// save is the cache's Writer: the store of record behind the breaker.
func (s *users) save(ctx context.Context, id int64, u User) error {
	tok, err := dbCall(ctx, s, "save", id, func(ctx context.Context) (replica.Token, error) { return s.store.Save(ctx, u) })
	if err != nil {
		return err
	}
	if rc, ok := ctx.Value(receiptKey{}).(*receipt); ok {
		rc.token, rc.written = tok, true
	}
	return nil
}

var errNoDelete = errors.New("userservice: users are not deleted")

// remove completes the Writer; the API has no DELETE.
func (s *users) remove(context.Context, int64) error { return errNoDelete }

// cacheError logs what the cache absorbed (Redis down: reads fall through to the database).
func (s *users) cacheError(ctx context.Context, id int64, err error) {
	tracing.SpanFromContext(ctx).AddEvent("cache.error", tracing.String("error", err.Error()))
	s.log.Warn("cache", "user", id, "err", err)
}

// dbCall runs one call to the store of record in a client span, through the breaker, within
// dbTimeout. An open breaker fails it at once with an error matching breaker.ErrOpen.
func dbCall[T any](ctx context.Context, s *users, op string, id int64, fn func(context.Context) (T, error)) (T, error) {
	ctx, span := s.tracer.Start(ctx, "db "+op, tracing.WithSpanKind(tracing.SpanKindClient),
		tracing.WithAttributes(tracing.String("db.operation", op)))
	defer span.End()
	if id != 0 {
		span.SetAttributes(tracing.Int64("user.id", id))
	}
	v, err := breaker.Do(ctx, s.breaker, func(ctx context.Context) (T, error) {
		ctx, cancel := context.WithTimeout(ctx, s.dbTimeout)
		defer cancel()
		return fn(ctx)
	})
	span.SetAttributes(tracing.String("breaker.state", s.breaker.State().String()))
	if err != nil && !errors.Is(err, errNoUser) {
		span.RecordError(err)
		span.SetStatus(tracing.StatusError, err.Error())
	}
	return v, err
}

// readInfo records where a request's read was answered, for the X-Cache and X-DB-Route response
// headers. The cache's hooks and the router's OnRoute hook fill it through ctx; a load runs on the
// cache's goroutine with ctx's values, hence the mutex.
type readInfo struct {
	mu     sync.Mutex
	source string // "memory", "redis", "database", "bypass"; "" for a read that joined another's load
	route  string // node and reason of the replica router's decision
}

type readInfoKey struct{}

func withReadInfo(ctx context.Context) (context.Context, *readInfo) {
	ri := &readInfo{}
	return context.WithValue(ctx, readInfoKey{}, ri), ri
}

func (ri *readInfo) get() (source, route string) {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	return ri.source, ri.route
}

func setSource(ctx context.Context, source string) {
	if ri, ok := ctx.Value(readInfoKey{}).(*readInfo); ok {
		ri.mu.Lock()
		ri.source = source
		ri.mu.Unlock()
	}
}

// observe is the cache hooks' body: an event on the current span, and for hits and loads the
// answer's source.
func observe(ctx context.Context, event, level string) {
	tracing.SpanFromContext(ctx).AddEvent(event, tracing.String("cache.level", level))
	if event != "cache.miss" {
		setSource(ctx, level)
	}
}

// routed is the replica router's OnRoute hook: which node a query went to and why, on the query's
// span and, for reads, in X-DB-Route.
func routed(ctx context.Context, r replica.RouteInfo) {
	tracing.SpanFromContext(ctx).SetAttributes(
		tracing.String("db.node", r.Node), tracing.String("db.route", r.Reason.String()))
	if r.Reason == replica.ReasonWrite {
		return
	}
	if ri, ok := ctx.Value(readInfoKey{}).(*readInfo); ok {
		ri.mu.Lock()
		ri.route = fmt.Sprintf("%s; reason=%s", r.Node, r.Reason)
		ri.mu.Unlock()
	}
}

// usersStats is the service's part of /debug/stats.
type usersStats struct {
	Cache        cache.Stats    `json:"cache"`
	Breaker      breaker.Counts `json:"breaker"`
	BreakerState string         `json:"breaker_state"`
}

func (s *users) Stats() usersStats {
	return usersStats{Cache: s.cache.Stats(), Breaker: s.breaker.Counts(), BreakerState: s.breaker.State().String()}
}
