package ratelimit

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

func serve(t *testing.T, o MiddlewareOptions, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	mw, err := Middleware(o)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	mw(okHandler).ServeHTTP(rec, req)
	return rec
}

func request(remote string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	return r
}

func TestMiddlewareHeaders(t *testing.T) {
	type want struct {
		code       int
		policy     string
		ratelimit  string
		retryAfter string
	}
	steps := []struct {
		at   time.Duration
		want want
	}{
		{0, want{204, `"default";q=2;w=60`, `"default";r=1;t=30`, ""}},
		{0, want{204, `"default";q=2;w=60`, `"default";r=0;t=60`, ""}},
		{0, want{429, `"default";q=2;w=60`, `"default";r=0;t=60`, "30"}},
		{10 * time.Second, want{429, `"default";q=2;w=60`, `"default";r=0;t=50`, "20"}},
		{30 * time.Second, want{204, `"default";q=2;w=60`, `"default";r=0;t=60`, ""}},
	}
	synctest.Test(t, func(t *testing.T) {
		k, err := NewKeyed(KeyedOptions{Limit: PerMinute(2)})
		require.NoError(t, err)
		defer k.Close()
		start := time.Now()
		for i, s := range steps {
			time.Sleep(s.at - time.Since(start))
			rec := serve(t, MiddlewareOptions{Limiter: k}, request("192.0.2.1:1234"))
			got := want{rec.Code, rec.Header().Get("RateLimit-Policy"), rec.Header().Get("RateLimit"), rec.Header().Get("Retry-After")}
			assert.Equal(t, s.want, got, "request %d", i)
		}
		// Another client has its own bucket.
		rec := serve(t, MiddlewareOptions{Limiter: k}, request("192.0.2.2:1234"))
		assert.Equal(t, 204, rec.Code)
	})
}

func TestMiddlewareOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k, err := NewKeyed(KeyedOptions{Limit: PerMinute(10)})
		require.NoError(t, err)
		defer k.Close()
		req := request("192.0.2.1:1")
		req.Header.Set("X-Api-Key", "key-1")
		rec := serve(t, MiddlewareOptions{
			Limiter: k, Key: KeyByHeader("X-Api-Key"), Policy: "api",
			Cost: func(*http.Request) int { return 4 }, LegacyHeaders: true,
		}, req)
		assert.Equal(t, 204, rec.Code)
		h := rec.Header()
		assert.Equal(t, `"api";q=10;w=60`, h.Get("RateLimit-Policy"))
		assert.Equal(t, `"api";r=6;t=24`, h.Get("RateLimit"))
		assert.Equal(t, "10", h.Get("X-RateLimit-Limit"))
		assert.Equal(t, "6", h.Get("X-RateLimit-Remaining"))
		assert.Equal(t, strconv.FormatInt(time.Now().Add(24*time.Second).Unix(), 10), h.Get("X-RateLimit-Reset"))

		// The key is the API key, not the address: a different address shares the bucket.
		req2 := request("198.51.100.7:1")
		req2.Header.Set("X-Api-Key", "key-1")
		rec = serve(t, MiddlewareOptions{Limiter: k, Key: KeyByHeader("X-Api-Key"), Cost: func(*http.Request) int { return 7 },
			OnLimited: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })}, req2)
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "OnLimited writes the denial")
		assert.Equal(t, "6", rec.Header().Get("Retry-After"))
	})
}

func TestMiddlewareErrors(t *testing.T) {
	k, err := NewKeyed(KeyedOptions{Limit: PerMinute(10), SweepInterval: -1})
	require.NoError(t, err)
	defer k.Close()
	failing := DeciderFunc(func(context.Context, string, int) (Result, error) { return Result{}, errors.New("boom") })
	tests := []struct {
		name string
		o    MiddlewareOptions
		req  *http.Request
		code int
	}{
		{"no header", MiddlewareOptions{Limiter: k, Key: KeyByHeader("X-Api-Key")}, request("192.0.2.1:1"), 400},
		{"bad RemoteAddr", MiddlewareOptions{Limiter: k}, request("nonsense"), 500},
		{"empty key", MiddlewareOptions{Limiter: k, Key: func(*http.Request) (string, error) { return "", nil }}, request("192.0.2.1:1"), 400},
		{"limiter fails", MiddlewareOptions{Limiter: failing}, request("192.0.2.1:1"), 500},
		{"cost above burst", MiddlewareOptions{Limiter: k, Cost: func(*http.Request) int { return 11 }}, request("192.0.2.1:1"), 413},
		{"custom OnError", MiddlewareOptions{Limiter: failing, OnError: func(w http.ResponseWriter, _ *http.Request, err error) {
			w.WriteHeader(http.StatusTeapot)
		}}, request("192.0.2.1:1"), http.StatusTeapot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.code, serve(t, tt.o, tt.req).Code)
		})
	}
	_, err = Middleware(MiddlewareOptions{})
	assert.ErrorContains(t, err, "Limiter is nil")
}

func TestMiddlewareFallbackHasNoQuotaHeaders(t *testing.T) {
	tests := []struct {
		allowed bool
		code    int
	}{{true, 204}, {false, 429}}
	for _, tt := range tests {
		d := DeciderFunc(func(context.Context, string, int) (Result, error) {
			return Result{Allowed: tt.allowed, Fallback: true, Limit: PerMinute(5), RetryAfter: 1500 * time.Millisecond}, nil
		})
		rec := serve(t, MiddlewareOptions{Limiter: d}, request("192.0.2.1:1"))
		assert.Equal(t, tt.code, rec.Code)
		assert.Empty(t, rec.Header().Get("RateLimit"))
		assert.Empty(t, rec.Header().Get("RateLimit-Policy"))
		if !tt.allowed {
			assert.Equal(t, "2", rec.Header().Get("Retry-After"), "rounded up")
		}
	}
}

func TestKeyByIP(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.1:443", "192.0.2.1"},
		{"[2001:db8::1]:80", "2001:db8::1"},
	}
	for _, tt := range tests {
		got, err := KeyByIP(request(tt.remote))
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
}

func BenchmarkMiddlewareKeyed(b *testing.B) {
	k, _ := NewKeyed(KeyedOptions{Limit: Limit{Rate: 1e8, Burst: 1000}, SweepInterval: -1})
	defer k.Close()
	mw, _ := Middleware(MiddlewareOptions{Limiter: k})
	h := mw(okHandler)
	req := request("192.0.2.1:1")
	rec := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(rec, req)
	}
}

func TestSFString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"default", `"default"`},
		{`say "hi"`, `"say \"hi\""`},
		{`a\b`, `"a\\b"`},
		{"", `""`},
	}
	for _, tt := range tests {
		got, err := sfString(tt.in)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
	_, err := sfString("tab\there")
	assert.ErrorContains(t, err, "printable ASCII")
	_, err = Middleware(MiddlewareOptions{Limiter: DeciderFunc(nil), Policy: "naïve"})
	assert.ErrorContains(t, err, "printable ASCII")
}

// FuzzSFString checks that every accepted policy name encodes to a valid sf-string that decodes
// back to the name, and that only names with bytes outside printable ASCII are refused.
func FuzzSFString(f *testing.F) {
	for _, s := range []string{"default", `a"b\c`, "", "naïve", "\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc, err := sfString(s)
		printable := true
		for i := 0; i < len(s); i++ {
			printable = printable && s[i] >= 0x20 && s[i] <= 0x7e
		}
		if !printable {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.True(t, len(enc) >= 2 && enc[0] == '"' && enc[len(enc)-1] == '"')
		var dec []byte
		for i := 1; i < len(enc)-1; i++ {
			c := enc[i]
			require.True(t, c >= 0x20 && c <= 0x7e)
			require.NotEqual(t, byte('"'), c, "unescaped quote at %d", i)
			if c == '\\' {
				i++
				require.Contains(t, `"\`, string(enc[i]), "only \\\" and \\\\ are escapes")
				c = enc[i]
			}
			dec = append(dec, c)
		}
		require.Equal(t, s, string(dec))
	})
}

func TestMiddlewareNoLimitHasNoQuotaHeaders(t *testing.T) {
	l, err := New(Limit{Rate: Inf})
	require.NoError(t, err)
	rec := serve(t, MiddlewareOptions{Limiter: l}, request("192.0.2.1:1"))
	assert.Equal(t, 204, rec.Code)
	assert.Empty(t, rec.Header().Get("RateLimit-Policy"))
}
