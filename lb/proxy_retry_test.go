package lb

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProxyBuffersBodiesForRetries sends requests as a server receives them (no GetBody) to a
// first backend that answers 503 and a second that echoes: a retryable request whose body fits
// MaxRetryBodyBytes is buffered and resent; any other gets its one attempt, with its whole body.
func TestProxyBuffersBodiesForRetries(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		idemKey     bool
		body        string
		chunked     bool  // no Content-Length: the size shows only while reading
		max         int64 // MaxRetryBodyBytes
		wantRetried bool
	}{
		{"PUT under the default limit", http.MethodPut, false, "hello", false, 0, true},
		{"chunked PUT under the limit", http.MethodPut, false, "hello", true, 8, true},
		{"PUT at the limit", http.MethodPut, false, "hello", false, 5, true},
		{"PUT over the limit by Content-Length", http.MethodPut, false, "hello world", false, 5, false},
		{"chunked PUT over the limit streams through", http.MethodPut, false, strings.Repeat("x", 100), true, 10, false},
		{"negative limit never buffers", http.MethodPut, false, "hello", false, -1, false},
		{"POST is not retried", http.MethodPost, false, "hello", false, 0, false},
		{"POST with an Idempotency-Key", http.MethodPost, true, "hello", false, 0, true},
		{"GET without a body", http.MethodGet, false, "", false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var firstGot string
			sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				firstGot = string(b)
				mu.Unlock()
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			defer sick.Close()
			echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "%s %d", b, r.ContentLength)
			}))
			defer echo.Close()
			us, ue := mustURL(t, sick.URL), mustURL(t, echo.URL)
			b, err := New(Options[*url.URL]{Backends: []Backend[*url.URL]{{Name: "sick", Value: us}, {Name: "echo", Value: ue}}})
			require.NoError(t, err)
			defer b.Close()
			p, err := NewProxy(b, ProxyOptions[*url.URL]{MaxRetryBodyBytes: tt.max})
			require.NoError(t, err)

			req := httptest.NewRequest(tt.method, "/", strings.NewReader(tt.body))
			if tt.chunked {
				req.Body, req.ContentLength = io.NopCloser(strings.NewReader(tt.body)), -1
			}
			if tt.idemKey {
				req.Header.Set("Idempotency-Key", "k1")
			}
			require.Nil(t, req.GetBody, "as a server receives it")
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, req)

			mu.Lock()
			assert.Equal(t, tt.body, firstGot, "the first backend got the whole body")
			mu.Unlock()
			if tt.wantRetried {
				require.Equal(t, http.StatusOK, rec.Code)
				assert.Equal(t, fmt.Sprintf("%s %d", tt.body, len(tt.body)), rec.Body.String(), "resent in full, with its length")
			} else {
				assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "one attempt: the backend's answer goes back")
			}
			for _, s := range b.Stats() {
				assert.Zero(t, s.Active, "%s: every lease ended", s.Name)
			}
		})
	}
}

// TestBackendFromContext checks that the transport learns each attempt's backend from the
// request's context, even for two backends on one host that differ only by path.
func TestBackendFromContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/down") {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	down, up := mustURL(t, srv.URL+"/down"), mustURL(t, srv.URL+"/up")
	b, err := New(Options[*url.URL]{Backends: []Backend[*url.URL]{{Name: "down", Value: down}, {Name: "up", Value: up}}})
	require.NoError(t, err)
	defer b.Close()
	var mu sync.Mutex
	var seen []string
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		u, name, err := BackendFromContext[*url.URL](r.Context())
		require.NoError(t, err)
		_, wrongName, err := BackendFromContext[string](r.Context())
		assert.ErrorIs(t, err, ErrBackendType)
		assert.Equal(t, name, wrongName, "the name comes with the type error")
		assert.Contains(t, err.Error(), "BackendFromContext[string] on backend")
		assert.Contains(t, err.Error(), "a *url.URL")
		assert.Equal(t, u.Host, r.URL.Host)
		assert.True(t, strings.HasPrefix(r.URL.Path, u.Path), "%s is under %s", r.URL.Path, u.Path)
		mu.Lock()
		seen = append(seen, name)
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})
	p, err := NewProxy(b, ProxyOptions[*url.URL]{Transport: rt})
	require.NoError(t, err)
	code, _ := get(t, p, http.MethodGet, "/x", "")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, []string{"down", "up"}, seen, "one entry per attempt")

	_, _, err = BackendFromContext[*url.URL](context.Background())
	assert.ErrorIs(t, err, ErrNotProxied)
}

// TestProxyWithUntrackedLeases checks that the proxy ends each lease exactly once even when a
// second Done would count (the body is read to its end and then closed).
func TestProxyWithUntrackedLeases(t *testing.T) {
	_, bs, _ := proxyFleet(t, 2)
	b, err := New(Options[*url.URL]{Backends: bs, UntrackedLeases: true})
	require.NoError(t, err)
	defer b.Close()
	p, err := NewProxy(b, ProxyOptions[*url.URL]{})
	require.NoError(t, err)
	for range 4 {
		code, _ := get(t, p, http.MethodPut, "/x", "body")
		require.Equal(t, http.StatusOK, code)
	}
	for _, s := range b.Stats() {
		assert.Zero(t, s.Active, "%s", s.Name)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u
}
