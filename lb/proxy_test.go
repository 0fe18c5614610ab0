package lb

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// proxyFleet starts n httptest backends that answer with their name and the path they saw.
func proxyFleet(t *testing.T, n int) ([]*httptest.Server, []Backend[*url.URL], []*atomic.Int64) {
	t.Helper()
	servers := make([]*httptest.Server, n)
	bs := make([]Backend[*url.URL], n)
	hits := make([]*atomic.Int64, n)
	for i := range servers {
		name := fmt.Sprintf("s%d", i)
		hits[i] = new(atomic.Int64)
		h := hits[i]
		servers[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.Add(1)
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s %s", name, r.URL.Path, r.URL.RawQuery, body)
		}))
		t.Cleanup(servers[i].Close)
		u, err := url.Parse(servers[i].URL + "/base")
		require.NoError(t, err)
		bs[i] = Backend[*url.URL]{Name: name, Value: u}
	}
	return servers, bs, hits
}

func get(t *testing.T, h http.Handler, method, target, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestProxyRetriesIdempotentRequestsOnAnotherBackend(t *testing.T) {
	servers, bs, hits := proxyFleet(t, 3)
	b, err := New(Options[*url.URL]{Backends: bs, Passive: Passive{MaxFails: 2}, FailClosed: true})
	require.NoError(t, err)
	defer b.Close()
	p, err := NewProxy(b, ProxyOptions[*url.URL]{})
	require.NoError(t, err)

	code, body := get(t, p, http.MethodGet, "/x?q=1", "")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "s0 /base/x q=1 ", body)

	servers[1].Close() // s1 dies: connections are refused
	for i := range 12 {
		code, body := get(t, p, http.MethodGet, fmt.Sprintf("/r%d", i), "")
		require.Equal(t, http.StatusOK, code, "request %d", i)
		assert.NotContains(t, body, "s1")
	}
	assert.Zero(t, hits[1].Load())
	st := b.Stats()
	assert.False(t, st[1].Healthy, "two refused connections ejected s1")
	for _, s := range st {
		assert.Zero(t, s.Active, "%s: every lease ended", s.Name)
	}

	// A POST is not idempotent: it is not retried, so it fails when it lands on a dead backend.
	require.NoError(t, b.Update(bs[1:2]))
	code, _ = get(t, p, http.MethodPost, "/p", "payload")
	assert.Equal(t, http.StatusServiceUnavailable, code, "s1 is ejected and FailClosed: nothing to pick")
}

func TestProxyDoesNotRetryPost(t *testing.T) {
	servers, bs, hits := proxyFleet(t, 2)
	servers[0].Close()
	b, err := New(Options[*url.URL]{Backends: bs, Passive: Passive{MaxFails: -1}})
	require.NoError(t, err)
	defer b.Close()
	p, err := NewProxy(b, ProxyOptions[*url.URL]{})
	require.NoError(t, err)

	code, _ := get(t, p, http.MethodPost, "/p", "payload") // round robin starts at s0
	assert.Equal(t, http.StatusBadGateway, code)
	assert.Zero(t, hits[1].Load())

	code, _ = get(t, p, http.MethodGet, "/g", "") // round robin: this one goes to s1
	require.Equal(t, http.StatusOK, code)

	req := httptest.NewRequest(http.MethodPost, "/p", strings.NewReader("payload"))
	req.Header.Set("Idempotency-Key", "42")
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("payload")), nil }
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, req) // lands on the dead s0 first
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "s1 /base/p  payload", rec.Body.String(), "the idempotent POST replays its body on s1")
}

func TestProxyStatusFailuresAndAttempts(t *testing.T) {
	var calls atomic.Int64
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	u, _ := url.Parse(failing.URL)
	bs := []Backend[*url.URL]{{Name: "a", Value: u}, {Name: "b", Value: u}, {Name: "c", Value: u}}
	b, err := New(Options[*url.URL]{Backends: bs, Passive: Passive{MaxFails: -1}})
	require.NoError(t, err)
	defer b.Close()
	p, err := NewProxy(b, ProxyOptions[*url.URL]{Attempts: 2})
	require.NoError(t, err)
	code, _ := get(t, p, http.MethodGet, "/", "")
	assert.Equal(t, http.StatusServiceUnavailable, code, "the last attempt's answer goes back")
	assert.Equal(t, int64(2), calls.Load())
}

func TestProxyStickyKeyAndCustomURL(t *testing.T) {
	_, bs, _ := proxyFleet(t, 3)
	type node struct{ u *url.URL }
	nodes := make([]Backend[node], len(bs))
	for i, be := range bs {
		nodes[i] = Backend[node]{Name: be.Name, Value: node{be.Value}}
	}
	b, err := New(Options[node]{Policy: ConsistentHash, Backends: nodes})
	require.NoError(t, err)
	defer b.Close()
	_, err = NewProxy(b, ProxyOptions[node]{})
	assert.ErrorContains(t, err, "URL is required", "URL is required for a T other than *url.URL")
	assert.ErrorIs(t, err, ErrKeyRequired, "Key is required with ConsistentHash")
	p, err := NewProxy(b, ProxyOptions[node]{URL: func(n node) *url.URL { return n.u },
		Key: func(r *http.Request) string { return r.Header.Get("X-User") }})
	require.NoError(t, err)
	owner := ""
	for range 5 {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("X-User", "alice")
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		name := strings.Fields(rec.Body.String())[0]
		if owner == "" {
			owner = name
		}
		assert.Equal(t, owner, name)
	}
}

func TestNewProxyValidation(t *testing.T) {
	_, err := NewProxy[*url.URL](nil, ProxyOptions[*url.URL]{Attempts: -1})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nil Balancer")
	assert.Contains(t, err.Error(), "Attempts -1")
}

func TestJoinURLPath(t *testing.T) {
	tests := []struct{ base, req, want string }{
		{"http://h", "/a", "/a"},
		{"http://h/", "/a", "/a"},
		{"http://h/base", "/a", "/base/a"},
		{"http://h/base/", "/a", "/base/a"},
		{"http://h/base", "", "/base"},
		{"http://h/b%2Fc", "/a%2Fb", "/b%2Fc/a%2Fb"},
	}
	for _, tt := range tests {
		a, _ := url.Parse(tt.base)
		r, _ := url.Parse(tt.req)
		path, raw := joinURLPath(a, r)
		got := path
		if raw != "" {
			got = raw
		}
		assert.Equal(t, tt.want, got, "%s + %s", tt.base, tt.req)
	}
}
