package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"
)

// wait bounds every asynchronous expectation: breaker trips, probes, the membership loop.
const wait = 10 * time.Second

// harness runs the service the way main does, on a free port, with health timings short enough
// for a test.
type harness struct {
	t      testing.TB
	base   string
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

func start(t testing.TB, cfg config) *harness {
	t.Helper()
	cfg.addr = "127.0.0.1:0"
	cfg.healthEvery = 20 * time.Millisecond
	cfg.breakerOpen = 100 * time.Millisecond
	if cfg.opTimeout == 0 {
		// A dead node fails at once (connection refused); the deadline only has to spare a live
		// node on a loaded machine from counting as failed.
		cfg.opTimeout = 2 * time.Second
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
		t.Fatal("service not ready")
	}
	t.Cleanup(func() {
		cancel()
		h.client.CloseIdleConnections()
	})
	return h
}

// stop shuts the service down as SIGINT would and requires a clean exit.
func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		require.NoError(h.t, err)
	case <-time.After(wait):
		h.t.Fatal("run did not return after cancel")
	}
}

// do sends a request with an optional form body and session ID (as a bearer token) and decodes a
// JSON reply into out when out is not nil. It returns the response with its body read.
func (h *harness) do(method, path string, form url.Values, id string, out any) *http.Response {
	h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.base+path, body)
	require.NoError(h.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if id != "" {
		req.Header.Set("Authorization", "Bearer "+id)
	}
	resp, err := h.client.Do(req)
	require.NoError(h.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(h.t, err)
	if out != nil && resp.StatusCode < 300 {
		require.NoError(h.t, json.Unmarshal(b, out), "%s %s: %s", method, path, b)
	}
	return resp
}

func (h *harness) login(user string) loginReply {
	h.t.Helper()
	var r loginReply
	resp := h.do(http.MethodPost, "/login", url.Values{"user": {user}}, "", &r)
	require.Equal(h.t, http.StatusCreated, resp.StatusCode)
	return r
}

func (h *harness) me(id string) (int, meReply) {
	h.t.Helper()
	var r meReply
	resp := h.do(http.MethodGet, "/me", nil, id, &r)
	return resp.StatusCode, r
}

func (h *harness) nodes() nodesView {
	h.t.Helper()
	var v nodesView
	resp := h.do(http.MethodGet, "/admin/nodes", nil, "", &v)
	require.Equal(h.t, http.StatusOK, resp.StatusCode)
	return v
}

func (v nodesView) node(name string) nodeView {
	for _, n := range v.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nodeView{}
}

// waitMembership waits until the named node is on the ring with a closed breaker (in) or off it
// with a breaker that is not closed (!in).
func (h *harness) waitMembership(name string, in bool) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		v := h.nodes()
		n := v.node(name)
		return n.InRing == in && (n.Breaker == "closed") == in && strings.Contains(strings.Join(v.Ring, ","), name) == in
	}, wait, 10*time.Millisecond, "%s in ring = %v", name, in)
}

// survival is the whole story on any set of three nodes: 200 sessions, one node lost, every
// session still readable, only the lost node's keys moved, the node back and purged. kill and
// revive stop and start the node named victim.
func survival(t testing.TB, h *harness, victim string, kill, revive func()) {
	const sessions = 200
	ids := make([]string, sessions)
	primary := make(map[string]string, sessions)
	owned := make(map[string]int)
	for i := range ids {
		r := h.login(fmt.Sprintf("user-%d", i))
		require.Len(t, r.StoredOn, 2)
		require.NotEqual(t, r.StoredOn[0], r.StoredOn[1])
		ids[i] = r.ID
		code, me := h.me(r.ID)
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, me.Replicas[0], me.ServedBy, "the owner answers while every node is up")
		primary[r.ID] = me.ServedBy
		owned[me.ServedBy]++
	}
	var total int64
	for _, n := range h.nodes().Nodes {
		require.NotNil(t, n.Keys, n.Name)
		total += *n.Keys
	}
	require.EqualValues(t, 2*sessions, total, "two copies of every session")
	t.Logf("primaries before the loss: %v", owned)
	for name, n := range owned {
		require.InDelta(t, sessions/3, n, sessions/6, "share of %s", name)
	}

	kill()
	// Readable at once, before the breaker has even tripped: reads fall through to the replica.
	for _, id := range ids {
		code, me := h.me(id)
		require.Equal(t, http.StatusOK, code)
		require.NotEqual(t, victim, me.ServedBy)
	}
	h.waitMembership(victim, false)
	v := h.nodes()
	require.Len(t, v.Ring, 2)
	require.Nil(t, v.node(victim).Keys)
	require.NotEmpty(t, v.node(victim).Error)

	// Only the lost node's keys moved; every other key kept its owner.
	moved := 0
	var gone string // a session owned by the victim, logged out while it is away
	for _, id := range ids {
		code, me := h.me(id)
		require.Equal(t, http.StatusOK, code)
		require.NotContains(t, me.Replicas, victim)
		if primary[id] == victim {
			moved++
			gone = id
			continue
		}
		require.Equal(t, primary[id], me.Replicas[0], "a key moved between surviving nodes")
		require.Equal(t, primary[id], me.ServedBy)
	}
	require.Equal(t, owned[victim], moved)
	require.InDelta(t, 1.0/3, float64(moved)/sessions, 0.13, "share of keys that moved")

	var out map[string]bool
	resp := h.do(http.MethodPost, "/logout", nil, gone, &out)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, out["logged_out"])
	code, _ := h.me(gone)
	require.Equal(t, http.StatusUnauthorized, code)

	revive()
	h.waitMembership(victim, true)
	require.Len(t, h.nodes().Ring, 3)
	for _, id := range ids {
		code, me := h.me(id)
		if id == gone {
			// The victim came back with its old copy; the purge before it rejoined removed it.
			require.Equal(t, http.StatusUnauthorized, code, "a logged-out session came back")
			continue
		}
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, primary[id], me.Replicas[0], "the victim owns its keys again")
		if primary[id] == victim {
			// The first read finds the victim empty and repairs it; the next is served by it.
			require.NotEqual(t, victim, me.ServedBy)
			_, me = h.me(id)
		}
		require.Equal(t, primary[id], me.ServedBy)
	}
}

// TestSmoke runs the service on three embedded nodes through login, loss of a node, logout
// during the loss, and revival, then shuts it down cleanly.
func TestSmoke(t *testing.T) {
	h := start(t, config{nodes: 3, loginRate: -1})
	v := h.nodes()
	require.Equal(t, []string{"node-0", "node-1", "node-2"}, v.Ring)
	require.Equal(t, 2, v.Replicas)

	kill := func() {
		resp := h.do(http.MethodPost, "/admin/nodes/node-1/kill", nil, "", nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
	}
	revive := func() {
		resp := h.do(http.MethodPost, "/admin/nodes/node-1/revive", nil, "", nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
	}
	survival(t, h, "node-1", kill, revive)
	h.stop()
}

// TestSessionEndpoints covers the cookie, the bearer token and the answers to bad requests.
func TestSessionEndpoints(t *testing.T) {
	h := start(t, config{nodes: 2})

	resp := h.do(http.MethodPost, "/login", url.Values{"user": {"alice"}}, "", nil)
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	cookies := resp.Cookies()
	require.Len(t, cookies, 1)
	require.Equal(t, cookieName, cookies[0].Name)
	require.True(t, cookies[0].HttpOnly)

	req, err := http.NewRequest(http.MethodGet, h.base+"/me", nil)
	require.NoError(t, err)
	req.AddCookie(cookies[0])
	mresp, err := h.client.Do(req)
	require.NoError(t, err)
	var me meReply
	require.NoError(t, json.NewDecoder(mresp.Body).Decode(&me))
	mresp.Body.Close()
	require.Equal(t, http.StatusOK, mresp.StatusCode)
	require.Equal(t, "alice", me.User)
	require.Equal(t, cookies[0].Value, me.ID)

	for _, tc := range []struct {
		name   string
		method string
		path   string
		form   url.Values
		id     string
		status int
	}{
		{"me without a session", http.MethodGet, "/me", nil, "", http.StatusUnauthorized},
		{"me with a malformed id", http.MethodGet, "/me", nil, "../../etc", http.StatusUnauthorized},
		{"me with an unknown id", http.MethodGet, "/me", nil, strings.Repeat("A", 26), http.StatusUnauthorized},
		{"login without a user", http.MethodPost, "/login", url.Values{}, "", http.StatusBadRequest},
		{"login with a long user", http.MethodPost, "/login", url.Values{"user": {strings.Repeat("x", 65)}}, "", http.StatusBadRequest},
		{"logout without a session", http.MethodPost, "/logout", nil, "", http.StatusOK},
		{"kill an unknown node", http.MethodPost, "/admin/nodes/node-9/kill", nil, "", http.StatusNotFound},
		{"revive an unknown node", http.MethodPost, "/admin/nodes/node-9/revive", nil, "", http.StatusNotFound},
		{"revive a live node", http.MethodPost, "/admin/nodes/node-0/revive", nil, "", http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := h.do(tc.method, tc.path, tc.form, tc.id, nil)
			require.Equal(t, tc.status, resp.StatusCode)
		})
	}

	// Logout ends the session everywhere; a second logout finds nothing.
	var out map[string]bool
	h.do(http.MethodPost, "/logout", nil, me.ID, &out)
	require.True(t, out["logged_out"])
	code, _ := h.me(me.ID)
	require.Equal(t, http.StatusUnauthorized, code)
	h.do(http.MethodPost, "/logout", nil, me.ID, &out)
	require.False(t, out["logged_out"])
	h.stop()
}

// TestLoginRateLimit: the limit is per user, and a denial carries Retry-After and the RateLimit
// fields.
func TestLoginRateLimit(t *testing.T) {
	h := start(t, config{nodes: 1, replicas: 1, loginRate: 3})
	for range 3 {
		h.login("bob")
	}
	resp := h.do(http.MethodPost, "/login", url.Values{"user": {"bob"}}, "", nil)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.NotEmpty(t, resp.Header.Get("Retry-After"))
	require.Contains(t, resp.Header.Get("RateLimit-Policy"), `"login";q=3`)
	h.login("carol") // another user has a bucket of her own
	h.stop()
}

// TestAllNodesDown: with every node gone the store answers 503, and comes back with its nodes.
func TestAllNodesDown(t *testing.T) {
	h := start(t, config{nodes: 1, replicas: 1, loginRate: -1})
	id := h.login("dave").ID
	h.do(http.MethodPost, "/admin/nodes/node-0/kill", nil, "", nil)
	h.waitMembership("node-0", false)
	code, _ := h.me(id)
	require.Equal(t, http.StatusServiceUnavailable, code)
	resp := h.do(http.MethodPost, "/login", url.Values{"user": {"erin"}}, "", nil)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	h.do(http.MethodPost, "/admin/nodes/node-0/revive", nil, "", nil)
	h.waitMembership("node-0", true)
	code, _ = h.me(id) // purged on rejoin: with one copy, a lost node loses its sessions
	require.Equal(t, http.StatusUnauthorized, code)
	h.login("erin")
	h.stop()
}

// TestRealNodes runs the -redis path against two servers the service did not start: names come
// from the flag, and kill and revive are refused.
func TestRealNodes(t *testing.T) {
	a, b := miniredis.RunT(t), miniredis.RunT(t)
	h := start(t, config{redis: []string{"a=" + a.Addr(), b.Addr()}})
	v := h.nodes()
	require.Equal(t, []string{"a", b.Addr()}, v.Ring)

	id := h.login("frank").ID
	code, me := h.me(id)
	require.Equal(t, http.StatusOK, code)
	require.ElementsMatch(t, []string{"a", b.Addr()}, me.Replicas)
	resp := h.do(http.MethodPost, "/admin/nodes/a/kill", nil, "", nil)
	require.Equal(t, http.StatusNotImplemented, resp.StatusCode)
	h.stop()
}
