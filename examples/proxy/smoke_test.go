package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/girder-go/girder/examples/internal/promhttpx/promtest"
	"github.com/girder-go/girder/shard"
	"github.com/stretchr/testify/require"
)

// wait bounds every asynchronous expectation: health detection, breaker and ejection expiry.
const wait = 10 * time.Second

// harness runs the proxy the way main does, on a free port, with health timings short enough
// for a test.
type harness struct {
	t      *testing.T
	base   string
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg config) *harness {
	t.Helper()
	cfg.addr = "127.0.0.1:0"
	if cfg.probeEvery == 0 {
		cfg.probeEvery = 20 * time.Millisecond
	}
	cfg.ejectFor = 200 * time.Millisecond
	if cfg.breakerOpen == 0 {
		cfg.breakerOpen = 200 * time.Millisecond
	}
	cfg.logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, cancel: cancel, done: make(chan error, 1),
		client: &http.Client{Transport: &http.Transport{}, Timeout: wait}}
	ready := make(chan string, 1)
	go func() { h.done <- run(ctx, cfg, func(addr string) { ready <- addr }) }()
	select {
	case addr := <-ready:
		h.base = "http://" + addr
	case err := <-h.done:
		t.Fatalf("run returned before ready: %v", err)
	case <-time.After(wait):
		t.Fatal("proxy not ready")
	}
	t.Cleanup(func() {
		cancel()
		h.client.CloseIdleConnections()
	})
	return h
}

// stop shuts the proxy down as SIGINT would and requires a clean exit.
func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		require.NoError(h.t, err)
	case <-time.After(wait):
		h.t.Fatal("run did not return after cancel")
	}
}

// get sends GET path through the proxy with the given headers (name, value pairs) and returns
// the status and the backend's reply.
func (h *harness) get(path string, header ...string) (int, reply) {
	h.t.Helper()
	return h.do(http.MethodGet, path, "", header...)
}

// spread sends n requests, requires every one to succeed and counts them by backend.
func (h *harness) spread(n int, header ...string) map[string]int {
	h.t.Helper()
	seen := map[string]int{}
	for i := range n {
		code, r := h.get(fmt.Sprintf("/spread/%d", i), header...)
		require.Equal(h.t, http.StatusOK, code, "request %d", i)
		seen[r.Backend]++
	}
	return seen
}

func (h *harness) admin(method, path string, want int, into any) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, nil)
	require.NoError(h.t, err)
	resp, err := h.client.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	require.Equal(h.t, want, resp.StatusCode, "%s %s", method, path)
	if into != nil {
		require.NoError(h.t, json.NewDecoder(resp.Body).Decode(into))
	}
}

func (h *harness) backend(name string) backendView {
	h.t.Helper()
	var o overview
	h.admin(http.MethodGet, "/admin/backends", http.StatusOK, &o)
	for _, b := range o.Backends {
		if b.Name == name {
			return b
		}
	}
	h.t.Fatalf("no backend %s in /admin/backends", name)
	return backendView{}
}

func TestKillAndReviveMovesTraffic(t *testing.T) {
	var spans bytes.Buffer
	h := start(t, config{policy: "round-robin", trace: "json", traceOut: &spans})

	seen := h.spread(30)
	require.Len(t, seen, 3, "round robin reaches every backend: %v", seen)

	// The proxy joins the caller's trace and passes it on: same trace, its own span as parent.
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	code, r := h.get("/traced", "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	require.Equal(t, http.StatusOK, code)
	require.True(t, strings.HasPrefix(r.Traceparent, "00-"+traceID+"-"), r.Traceparent)
	require.NotContains(t, r.Traceparent, "00f067aa0ba902b7")

	var killed backendView
	h.admin(http.MethodPost, "/admin/backends/backend-2/kill", http.StatusOK, &killed)
	require.False(t, *killed.Alive)

	// Before health checks notice, requests that reach the dead backend are retried on another.
	h.spread(30)
	require.Eventually(t, func() bool { return !h.backend("backend-2").InRotation }, wait, 10*time.Millisecond,
		"health checks take the dead backend out")
	seen = h.spread(30)
	require.Zero(t, seen["backend-2"], "traffic left the dead backend: %v", seen)
	require.Positive(t, seen["backend-1"], "%v", seen)
	require.Positive(t, seen["backend-3"], "%v", seen)

	var revived backendView
	h.admin(http.MethodPost, "/admin/backends/backend-2/revive", http.StatusOK, &revived)
	require.True(t, *revived.Alive)
	require.Eventually(t, func() bool {
		code, r := h.get("/back")
		return code == http.StatusOK && r.Backend == "backend-2"
	}, wait, 10*time.Millisecond, "the revived backend gets traffic again")
	b2 := h.backend("backend-2")
	require.True(t, b2.Healthy)
	require.Equal(t, "closed", b2.Breaker)

	h.admin(http.MethodPost, "/admin/backends/nope/kill", http.StatusNotFound, nil)
	h.admin(http.MethodGet, "/admin/nothing", http.StatusNotFound, nil)
	h.stop()
	require.Contains(t, spans.String(), traceID, "spans were flushed on shutdown")
	require.Contains(t, spans.String(), `"lb.backend":"backend-`, "client spans name the backend")
}

// do sends method path with body and headers (name, value pairs) and returns the status and,
// on success, the backend's reply.
func (h *harness) do(method, path, body string, header ...string) (int, reply) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.base+path, strings.NewReader(body))
	require.NoError(h.t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h.client.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	var r reply
	if resp.StatusCode == http.StatusOK {
		require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&r))
	}
	return resp.StatusCode, r
}

func TestRetriesOnlyWhatIsSafe(t *testing.T) {
	// No probes and a breaker that stays open: only the requests themselves meet the dead
	// backend, and round robin sends one of every three there first.
	h := start(t, config{policy: "round-robin", probeEvery: time.Hour, breakerOpen: time.Hour})
	h.admin(http.MethodPost, "/admin/backends/backend-2/kill", http.StatusOK, nil)

	for range 3 { // idempotent, body buffered and sent again on the retry
		code, r := h.do(http.MethodPut, "/items/1", "hello")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, int64(5), r.BodyBytes, "the retry resent the whole body")
	}
	codes := map[int]int{}
	for range 3 { // not idempotent: one attempt only
		code, _ := h.do(http.MethodPost, "/items", "hello")
		codes[code]++
	}
	require.Equal(t, map[int]int{http.StatusOK: 2, http.StatusBadGateway: 1}, codes)
	for i := range 3 { // made idempotent by its key
		code, r := h.do(http.MethodPost, "/items", "hello", "Idempotency-Key", fmt.Sprint("order-", i))
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, int64(5), r.BodyBytes)
	}
	b2 := h.backend("backend-2")
	require.Equal(t, int64(3), b2.Failed, "one failed attempt per round of three")
	require.Equal(t, "open", b2.Breaker, "three failures in a row")
	h.stop()
}

func TestStickySessions(t *testing.T) {
	h := start(t, config{policy: "sticky"})

	owner := map[string]string{}
	for i := range 20 {
		key := fmt.Sprintf("user-%d", i)
		seen := h.spread(3, "X-Session", key)
		require.Len(t, seen, 1, "key %s sticks to one backend: %v", key, seen)
		for b := range seen {
			owner[key] = b
		}
		byCookie := h.spread(2, "Cookie", "session="+key)
		require.Equal(t, map[string]int{owner[key]: 2}, byCookie, "the cookie carries the same key")
	}
	owners := map[string]bool{}
	for _, b := range owner {
		owners[b] = true
	}
	require.GreaterOrEqual(t, len(owners), 2, "keys are spread: %v", owner)
	// The placement is shard's ring over the backends' names: anyone can compute it.
	ring, err := shard.NewRing[string](shard.RingOptions[string]{})
	require.NoError(t, err)
	require.NoError(t, ring.Add("backend-1", "backend-2", "backend-3"))
	for key, b := range owner {
		want, err := ring.Locate(key)
		require.NoError(t, err)
		require.Equal(t, want, b, "key %s", key)
	}

	victim := owner["user-0"]
	h.admin(http.MethodPost, "/admin/backends/"+victim+"/kill", http.StatusOK, nil)
	require.Eventually(t, func() bool { return !h.backend(victim).InRotation }, wait, 10*time.Millisecond)
	for key, was := range owner {
		seen := h.spread(2, "X-Session", key)
		require.Len(t, seen, 1, "key %s still sticks while %s is dead: %v", key, victim, seen)
		if was != victim {
			require.Equal(t, 2, seen[was], "key %s of a survivor does not move", key)
		} else {
			require.Zero(t, seen[victim], "key %s moved off the dead backend", key)
		}
	}

	h.admin(http.MethodPost, "/admin/backends/"+victim+"/revive", http.StatusOK, nil)
	require.Eventually(t, func() bool {
		code, r := h.get("/", "X-Session", "user-0")
		return code == http.StatusOK && r.Backend == victim
	}, wait, 10*time.Millisecond, "the key returns to its owner")
	h.stop()
}

func TestSickBackendTripsItsBreaker(t *testing.T) {
	h := start(t, config{policy: "round-robin"})
	h.admin(http.MethodPost, "/admin/backends/backend-3/sick", http.StatusOK, nil)

	// backend-3 passes its health checks but answers 503: its attempts are retried elsewhere,
	// and three failures in a row open its breaker, which takes it out of rotation.
	seen := h.spread(30)
	require.Zero(t, seen["backend-3"], "%v", seen)
	b3 := h.backend("backend-3")
	require.GreaterOrEqual(t, b3.Trips, 1, "the breaker tripped: %+v", b3)
	require.GreaterOrEqual(t, b3.Failed, int64(3), "%+v", b3)

	h.admin(http.MethodPost, "/admin/backends/backend-3/heal", http.StatusOK, nil)
	require.Eventually(t, func() bool {
		code, r := h.get("/healed")
		return code == http.StatusOK && r.Backend == "backend-3"
	}, wait, 10*time.Millisecond, "a half-open probe finds it healed")
	require.Equal(t, "closed", h.backend("backend-3").Breaker)
	h.stop()
}

func TestOpenBreakerKeepsBackendOutUntilReset(t *testing.T) {
	h := start(t, config{policy: "round-robin", breakerOpen: time.Hour})
	h.admin(http.MethodPost, "/admin/backends/backend-3/sick", http.StatusOK, nil)

	seen := h.spread(30)
	require.Zero(t, seen["backend-3"], "%v", seen)
	b3 := h.backend("backend-3")
	// Three failures in a row opened the breaker, and lb has not picked backend-3 since: its
	// breaker is its availability check. Health checks pass and passive health (five failures)
	// was not reached, so only the breaker keeps it out.
	require.Equal(t, int64(3), b3.Attempts, "%+v", b3)
	require.Equal(t, "open", b3.Breaker)
	require.True(t, b3.Healthy)
	require.False(t, b3.InRotation)

	h.admin(http.MethodPost, "/admin/backends/backend-3/heal", http.StatusOK, nil)
	require.Zero(t, h.spread(9)["backend-3"], "still out: the breaker is open for an hour")
	var reset backendView
	h.admin(http.MethodPost, "/admin/backends/backend-3/reset", http.StatusOK, &reset)
	require.Equal(t, "closed", reset.Breaker)
	require.Equal(t, 3, h.spread(9)["backend-3"], "round robin again")
	h.stop()
}

func TestRealBackends(t *testing.T) {
	var urls []string
	for _, name := range []string{"real-a", "real-b"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			json.NewEncoder(w).Encode(reply{Backend: name, Method: r.Method, Path: r.URL.Path})
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	h := start(t, config{backends: urls, policy: "p2c-peak-ewma"})

	var o overview
	h.admin(http.MethodGet, "/admin/backends", http.StatusOK, &o)
	require.Equal(t, "p2c-peak-ewma", o.Policy)
	require.Len(t, o.Backends, 2)
	u, err := url.Parse(urls[0])
	require.NoError(t, err)
	require.Equal(t, u.Host, o.Backends[0].Name)
	require.Nil(t, o.Backends[0].Alive, "a real backend's process is not ours")

	require.Eventually(t, func() bool { return len(h.spread(10)) == 2 }, wait, time.Millisecond,
		"p2c reaches both backends")
	h.admin(http.MethodPost, "/admin/backends/"+u.Host+"/kill", http.StatusConflict, nil)
	h.stop()
}

// TestTwoBackendsOnOneHost runs two named backends on one server, told apart by path prefix:
// lb names the picked backend in each attempt's context, so the failing one's breaker opens
// and the other's does not.
func TestTwoBackendsOnOneHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefix, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if prefix == "v1" && r.URL.Path != "/v1/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable) // v1 is sick, its health check passes
			return
		}
		json.NewEncoder(w).Encode(reply{Backend: prefix, Method: r.Method, Path: r.URL.Path})
	}))
	t.Cleanup(srv.Close)
	h := start(t, config{backends: []string{"v1=" + srv.URL + "/v1", "v2=" + srv.URL + "/v2"},
		policy: "round-robin", breakerOpen: time.Hour})

	require.Equal(t, map[string]int{"v2": 12}, h.spread(12), "v1's 503s are retried on v2")
	v1, v2 := h.backend("v1"), h.backend("v2")
	require.Equal(t, "open", v1.Breaker, "v1's failures reached v1's breaker")
	require.False(t, v1.InRotation)
	require.True(t, v1.Healthy, "its probes pass: only the breaker keeps it out")
	require.Equal(t, "closed", v2.Breaker)
	require.Zero(t, v2.Failed)
	h.stop()
}

// syncBuffer is a bytes.Buffer the proxy's goroutines can log to while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLoadGeneratorReportsTraffic(t *testing.T) {
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{addr: "127.0.0.1:0", policy: "sticky", load: 100, report: 20 * time.Millisecond,
			logger: slog.New(slog.NewTextHandler(&logs, nil))}, nil)
	}()
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "msg=traffic") && strings.Contains(logs.String(), "backend-1=")
	}, wait, 10*time.Millisecond, "the report logs the spread of the generated load")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "a clean shutdown under load")
	case <-time.After(wait):
		t.Fatal("run did not return")
	}
	require.Contains(t, logs.String(), "load_ok=")
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config
		want []string
	}{
		{"every problem at once", config{policy: "fastest", attempts: -1, probeEvery: -time.Second},
			[]string{`-policy "fastest"`, "-attempts -1", "-probe-every -1s"}},
		{"bad backend URLs", config{backends: []string{"ftp://x", "http://a:1", "http://a:1"}},
			[]string{`"ftp://x"`, "listed twice"}},
		{"bad hedging", config{hedgeQ: 2, hedgeDelay: -time.Second},
			[]string{"lb: Hedge.Quantile 2", "lb: Hedge.Delay -1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.cfg, nil)
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

// TestSurvivorsShareTheDeadBackendsTraffic: after a backend dies and health checks take it out,
// the two survivors share the traffic evenly, whatever the policy, one request at a time and with
// several in flight (the README's "kill a backend" walk-through).
func TestSurvivorsShareTheDeadBackendsTraffic(t *testing.T) {
	for _, policy := range []string{"round-robin", "least-connections", "p2c-least-request"} {
		t.Run(policy, func(t *testing.T) {
			h := start(t, config{policy: policy})
			h.admin(http.MethodPost, "/admin/backends/backend-2/kill", http.StatusOK, nil)
			require.Eventually(t, func() bool { return !h.backend("backend-2").InRotation }, wait, 10*time.Millisecond,
				"health checks take the dead backend out")
			for _, workers := range []int{1, 4} { // one request at a time (ties), then several at once
				seen := h.spreadConcurrently(workers, 600/workers)
				t.Logf("%s after backend-2 died, %d at once: %v", policy, workers, seen)
				require.Zero(t, seen["backend-2"], "%v", seen)
				share := float64(seen["backend-1"]) / float64(seen["backend-1"]+seen["backend-3"])
				require.InDelta(t, 0.5, share, 0.12, "backend-1's share of the survivors' traffic, %d at once: %v", workers, seen)
			}
			h.stop()
		})
	}
}

// spreadConcurrently sends n requests from each of workers goroutines, requires every one to
// succeed and counts them by backend.
func (h *harness) spreadConcurrently(workers, n int) map[string]int {
	h.t.Helper()
	var mu sync.Mutex
	seen := map[string]int{}
	failed := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range n {
				resp, err := h.client.Get(fmt.Sprintf("%s/load/%d/%d", h.base, w, i))
				backend := ""
				if err == nil {
					backend = resp.Header.Get("X-Backend")
					resp.Body.Close()
				}
				mu.Lock()
				if err != nil || resp.StatusCode != http.StatusOK {
					failed++
				} else {
					seen[backend]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Zero(h.t, failed, "requests failed; served %v", seen)
	return seen
}

// TestRetryBudgetAndHedgingFlags: with a tight retry budget and GETs hedged at the observed p95,
// every request is still answered.
func TestRetryBudgetAndHedgingFlags(t *testing.T) {
	h := start(t, config{retryBudget: 0.1, retryMin: 1, hedgeDelay: time.Millisecond, hedgeQ: 0.95})
	seen := h.spread(60)
	require.Len(t, seen, 3, "every backend served: %v", seen)
	h.stop()
}

// TestAdaptiveLimitShedsOverload forces overload on the adaptive limit in front of the backends:
// with its ceiling at 2 and a backend that holds every request, two requests are let through
// and the third waits its 50 ms in the queue and gets 503 and Retry-After, without reaching the backend.
// Once the held requests finish, requests pass again. With -adaptive-max -1 nothing is shed.
func TestAdaptiveLimitShedsOverload(t *testing.T) {
	release := make(chan struct{})
	var reached sync.WaitGroup
	var mu sync.Mutex
	hits := 0
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		mu.Lock()
		hits++
		mu.Unlock()
		reached.Done()
		<-release
	}))
	defer slow.Close()

	h := start(t, config{backends: []string{"slow=" + slow.URL}, adaptiveMax: 2})
	get := func() *http.Response {
		resp, err := h.client.Get(h.base + "/work")
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	reached.Add(2)
	held := make(chan int, 2)
	for range 2 {
		go func() { held <- get().StatusCode }()
	}
	reached.Wait() // both are at the backend
	adaptive := func(f promtest.Families, name string) float64 {
		return f.Value(t, name, "limiter", adaptiveLimiter)
	}
	f := h.scrape() // /metrics is not behind the limit
	require.EqualValues(t, 2, adaptive(f, "girder_ratelimit_adaptive_in_flight_calls"), f.Dump("girder_ratelimit_adaptive_in_flight_calls"))
	require.EqualValues(t, 2, adaptive(f, "girder_ratelimit_adaptive_limit"))
	resp := get()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	close(release)
	for range 2 {
		require.Equal(t, http.StatusOK, <-held)
	}
	reached.Add(1)
	require.Equal(t, http.StatusOK, get().StatusCode, "admitted again once the backends caught up")
	mu.Lock()
	require.Equal(t, 3, hits, "the shed request never reached the backend")
	mu.Unlock()
	f = h.scrape()
	require.EqualValues(t, 1, adaptive(f, "girder_ratelimit_adaptive_shed_calls_total"), f.Dump("girder_ratelimit_adaptive_shed_calls_total"))
	require.EqualValues(t, 3, adaptive(f, "girder_ratelimit_adaptive_admitted_calls_total"))
	require.Zero(t, adaptive(f, "girder_ratelimit_adaptive_waited_calls_total"), "the shed request waited, but was not admitted")
	require.Zero(t, adaptive(f, "girder_ratelimit_adaptive_in_flight_calls"))
	require.EqualValues(t, 1, requests(t, f, "get", "/", "503"))
	h.stop()
}
