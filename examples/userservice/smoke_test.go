package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"
)

// wait bounds every asynchronous expectation: the mailer, span export, the broadcast, the breaker.
const wait = 10 * time.Second

// instance is one userservice started by run, as main starts it, on a free port.
type instance struct {
	t      *testing.T
	base   string
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

// keys gives every request its own rate-limit key unless the test names one, so that only the
// rate-limit test spends a client's burst.
var keys atomic.Int64

func start(t *testing.T, cfg config) *instance {
	t.Helper()
	cfg.addr = "127.0.0.1:0"
	if cfg.breakerOpen == 0 {
		cfg.breakerOpen = 100 * time.Millisecond
	}
	if cfg.checkEvery == 0 {
		cfg.checkEvery = 100 * time.Millisecond
	}
	cfg.logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{t: t, cancel: cancel, done: make(chan error, 1),
		client: &http.Client{Transport: &http.Transport{}, Timeout: wait}}
	ready := make(chan string, 1)
	go func() { in.done <- run(ctx, cfg, func(addr string) { ready <- addr }) }()
	select {
	case addr := <-ready:
		in.base = "http://" + addr
	case err := <-in.done:
		t.Fatalf("run returned before ready: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("userservice not ready")
	}
	t.Cleanup(func() {
		cancel()
		in.client.CloseIdleConnections()
	})
	return in
}

// stop shuts the instance down as SIGINT would and requires a clean exit.
func (in *instance) stop() {
	in.t.Helper()
	in.cancel()
	select {
	case err := <-in.done:
		require.NoError(in.t, err)
	case <-time.After(wait):
		in.t.Fatal("run did not return after cancel")
	}
}

// reply is one HTTP answer.
type reply struct {
	code   int
	header http.Header
	body   []byte
}

func (r reply) user(t *testing.T) User {
	t.Helper()
	var u User
	require.NoError(t, json.Unmarshal(r.body, &u), "%s", r.body)
	return u
}

// do sends one request with the given headers (name, value pairs).
func (in *instance) do(method, path, body string, header ...string) reply {
	in.t.Helper()
	req, err := http.NewRequest(method, in.base+path, strings.NewReader(body))
	require.NoError(in.t, err)
	req.Header.Set(apiKeyHeader, fmt.Sprint("client-", keys.Add(1)))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := in.client.Do(req)
	require.NoError(in.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(in.t, err)
	return reply{code: resp.StatusCode, header: resp.Header, body: b}
}

func (in *instance) create(name, email string, header ...string) (User, reply) {
	in.t.Helper()
	r := in.do(http.MethodPost, "/users", fmt.Sprintf(`{"name":%q,"email":%q}`, name, email), header...)
	require.Equal(in.t, http.StatusCreated, r.code, "%s", r.body)
	u := r.user(in.t)
	require.Equal(in.t, fmt.Sprintf("/users/%d", u.ID), r.header.Get("Location"))
	return u, r
}

func (in *instance) get(id int64, header ...string) reply {
	in.t.Helper()
	return in.do(http.MethodGet, fmt.Sprintf("/users/%d", id), "", header...)
}

func (in *instance) update(id int64, name, email string, header ...string) reply {
	in.t.Helper()
	return in.do(http.MethodPut, fmt.Sprintf("/users/%d", id), fmt.Sprintf(`{"name":%q,"email":%q}`, name, email), header...)
}

// debug decodes a GET of a /debug endpoint into v.
func (in *instance) debug(path string, v any) {
	in.t.Helper()
	r := in.do(http.MethodGet, path, "")
	require.Equal(in.t, http.StatusOK, r.code, "%s", r.body)
	require.NoError(in.t, json.Unmarshal(r.body, v), "%s", r.body)
}

func (in *instance) stats() statsView {
	in.t.Helper()
	var s statsView
	in.debug("/debug/stats", &s)
	return s
}

func (in *instance) outbox() []Mail {
	in.t.Helper()
	var m []Mail
	in.debug("/debug/outbox", &m)
	return m
}

func (in *instance) spans(trace string) []spanView {
	in.t.Helper()
	var s []spanView
	in.debug("/debug/spans?trace="+trace, &s)
	return s
}

// statsView is the part of /debug/stats the tests read.
type statsView struct {
	Cache struct {
		Levels []struct {
			Name         string
			Hits, Misses uint64
		}
		Loads, Invalidations uint64
	} `json:"cache"`
	BreakerState string `json:"breaker_state"`
	Mailer       struct{ Delivered uint64 }
	Replicas     []struct {
		Name     string
		Role     uint8
		Fit      bool
		LSN      uint64
		LagBytes uint64
	} `json:"replicas"`
}

func (s statsView) l1Hits() uint64 { return s.Cache.Levels[0].Hits }

// spanView is the part of a /debug/spans entry the tests read.
type spanView struct {
	Name         string         `json:"name"`
	TraceID      string         `json:"traceId"`
	SpanID       string         `json:"spanId"`
	ParentSpanID string         `json:"parentSpanId"`
	Kind         string         `json:"kind"`
	Scope        string         `json:"scope"`
	Attributes   map[string]any `json:"attributes"`
	Events       []struct {
		Name       string         `json:"name"`
		Attributes map[string]any `json:"attributes"`
	} `json:"events"`
}

func findSpan(spans []spanView, name string) (spanView, bool) {
	for _, s := range spans {
		if s.Name == name {
			return s, true
		}
	}
	return spanView{}, false
}

const (
	callerTrace       = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan        = "00f067aa0ba902b7"
	callerTraceparent = "00-" + callerTrace + "-" + callerSpan + "-01"
)

// TestSmoke runs the whole flow on embedded defaults: create (event to the outbox), reads from
// the cache, update then read, a trace continued from the caller, the breaker opening and closing
// around an injected database outage, the rate limit, and a clean shutdown.
func TestSmoke(t *testing.T) {
	// A slow refill, so that a loaded machine cannot refill the greedy client's bucket during the
	// test; an open period long enough to observe the open breaker before it probes.
	const burst = 10
	in := start(t, config{rate: 0.1, burst: burst, breakerOpen: 2 * time.Second})

	// Create, in the caller's trace.
	u, r := in.create("Ada Lovelace", "ada@example.com", "traceparent", callerTraceparent)
	require.Contains(t, r.header.Get("traceresponse"), callerTrace, "the server span continues the caller's trace")
	require.Empty(t, r.header.Get(tokenHeader), "one copy of the data: no read-your-writes token")
	require.NotEmpty(t, r.header.Get("RateLimit"))
	require.NotEmpty(t, r.header.Get("RateLimit-Policy"))

	// user.created reaches the welcome mailer, in the same trace.
	require.Eventually(t, func() bool { return len(in.outbox()) == 1 }, wait, 10*time.Millisecond)
	mail := in.outbox()[0]
	require.Equal(t, "ada@example.com", mail.To)
	require.Equal(t, u.ID, mail.UserID)
	require.Equal(t, callerTrace, mail.TraceID)

	// Two reads: the write-through create left the user in L1, so neither touches the database.
	before := in.stats()
	for range 2 {
		r := in.get(u.ID)
		require.Equal(t, http.StatusOK, r.code, "%s", r.body)
		require.Equal(t, "memory", r.header.Get("X-Cache"))
		require.Equal(t, u, r.user(t))
	}
	after := in.stats()
	require.Equal(t, before.l1Hits()+2, after.l1Hits())
	require.Equal(t, before.Cache.Loads, after.Cache.Loads, "no load from the database")

	// Update, then read: the write went through the cache, so the cached read sees it.
	r = in.update(u.ID, "Ada King", "ada@example.org")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	r = in.get(u.ID)
	require.Equal(t, http.StatusOK, r.code)
	got := r.user(t)
	require.Equal(t, "Ada King", got.Name)
	require.Equal(t, "ada@example.org", got.Email)
	require.Equal(t, u.CreatedAt, got.CreatedAt)
	require.Equal(t, "bypass", in.get(u.ID, "Cache-Control", "no-cache").header.Get("X-Cache"))

	// An unknown user is a load, then a remembered absence.
	require.Equal(t, http.StatusNotFound, in.get(999).code)
	r = in.get(999)
	require.Equal(t, http.StatusNotFound, r.code)
	require.Equal(t, "memory", r.header.Get("X-Cache"), "negative caching")

	// Bad input.
	require.Equal(t, http.StatusBadRequest, in.get(0).code)
	require.Equal(t, http.StatusUnprocessableEntity, in.do(http.MethodPost, "/users", `{"name":"","email":"nope"}`).code)
	require.Equal(t, http.StatusBadRequest, in.do(http.MethodPost, "/users", `{"name":"x","email":"x@y.z","admin":true}`).code)

	// The spans of the create: the server span is the caller's child, the save and the mail its.
	var spans []spanView
	require.Eventually(t, func() bool {
		spans = in.spans(callerTrace)
		_, ok := findSpan(spans, "send welcome e-mail")
		return ok
	}, wait, 10*time.Millisecond)
	server, ok := findSpan(spans, "POST /users")
	require.True(t, ok, "%+v", spans)
	require.Equal(t, callerSpan, server.ParentSpanID)
	require.Equal(t, "server", server.Kind)
	save, ok := findSpan(spans, "db save")
	require.True(t, ok)
	require.Equal(t, server.SpanID, save.ParentSpanID)
	send, _ := findSpan(spans, "send welcome e-mail")
	require.Equal(t, "consumer", send.Kind)
	require.Equal(t, callerTrace, send.TraceID)
	// OpenTelemetry instrumentation records on girder's provider in the same trace: otelhttp made
	// the server span, and redisotel a span for each Redis command, under the span of either API
	// that issued it.
	require.Equal(t, "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", server.Scope)
	byID := map[string]spanView{}
	for _, s := range spans {
		byID[s.SpanID] = s
	}
	var redisSpans int
	for _, s := range spans {
		if s.Scope != "github.com/redis/go-redis/extra/redisotel" {
			continue
		}
		redisSpans++
		require.Equal(t, "redis", s.Attributes["db.system"])
		_, ok := byID[s.ParentSpanID]
		require.True(t, ok, "a redis span's parent is in the trace: %+v", s)
	}
	require.NotZero(t, redisSpans, "the create reached Redis through redisotel: %+v", spans)

	// Database outage: cached users are still served, the others fail until the breaker opens and
	// then fail fast with 503 and Retry-After; after the heal a probe closes it again.
	require.Equal(t, http.StatusNoContent, in.do(http.MethodPost, "/debug/db/fail", "").code)
	require.Equal(t, http.StatusOK, in.get(u.ID).code, "L1 answers while the database is down")
	var open reply
	for id := int64(1000); id < 1100; id++ {
		if open = in.get(id); open.code == http.StatusServiceUnavailable {
			break
		}
		require.Equal(t, http.StatusInternalServerError, open.code, "%s", open.body)
	}
	require.Equal(t, http.StatusServiceUnavailable, open.code, "%s", open.body)
	require.NotEmpty(t, open.header.Get("Retry-After"))
	require.Equal(t, "open", in.stats().BreakerState)
	require.Equal(t, http.StatusServiceUnavailable, in.update(u.ID, "X", "x@example.com").code)
	require.Equal(t, http.StatusNoContent, in.do(http.MethodPost, "/debug/db/heal", "").code)
	require.Eventually(t, func() bool { return in.get(2000).code == http.StatusNotFound }, wait, 20*time.Millisecond)
	require.Equal(t, "closed", in.stats().BreakerState)

	// Rate limit: one client's burst passes, the next request is refused with the headers.
	for i := range burst {
		r := in.get(u.ID, apiKeyHeader, "greedy")
		require.Equal(t, http.StatusOK, r.code, "request %d", i)
		require.Equal(t, `"users";q=10;w=100`, r.header.Get("RateLimit-Policy"))
	}
	r = in.get(u.ID, apiKeyHeader, "greedy")
	require.Equal(t, http.StatusTooManyRequests, r.code)
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, retry, 1)
	require.Contains(t, r.header.Get("RateLimit"), "r=0")
	require.Equal(t, http.StatusOK, in.get(u.ID, apiKeyHeader, "patient").code, "other clients are not limited")

	in.stop()
}

// TestTwoInstances runs two instances over one Redis and one store, as two pods behind a load
// balancer would: a read on the second comes from Redis (L2) and then from its own L1, and an
// update on the first reaches it through the invalidation broadcast.
func TestTwoInstances(t *testing.T) {
	mr := miniredis.RunT(t)
	store := newMemStore()
	a := start(t, config{redis: mr.Addr(), store: store})
	b := start(t, config{redis: mr.Addr(), store: store})

	u, _ := a.create("Grace Hopper", "grace@example.com")
	r := b.get(u.ID)
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "redis", r.header.Get("X-Cache"), "A's write-through reached the shared L2")
	require.Equal(t, "memory", b.get(u.ID).header.Get("X-Cache"), "back-filled into B's L1")

	require.Equal(t, http.StatusOK, a.update(u.ID, "Grace B. Hopper", "grace@example.com").code)
	// The broadcast reaches B within one pub/sub delivery.
	require.Eventually(t, func() bool { return b.get(u.ID).user(t).Name == "Grace B. Hopper" }, wait, 5*time.Millisecond)
	require.GreaterOrEqual(t, b.stats().Cache.Invalidations, uint64(1))
	require.Empty(t, b.outbox(), "the event bus is per process")
	require.Len(t, a.outbox(), 1)

	a.stop()
	b.stop()
}
