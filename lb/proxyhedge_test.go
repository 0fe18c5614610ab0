package lb

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProxyHedge: a GET whose first backend stalls is hedged to the other after the delay; the
// client gets the hedge's answer, the stalled attempt is canceled and its lease ends without
// counting against the backend.
func TestProxyHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bs := []Backend[*url.URL]{
			{Name: "a", Value: &url.URL{Scheme: "http", Host: "a.invalid"}},
			{Name: "b", Value: &url.URL{Scheme: "http", Host: "b.invalid"}},
		}
		b, err := New(Options[*url.URL]{Backends: bs, Passive: Passive{MaxFails: 1}, Hedge: Hedge{Delay: 10 * time.Millisecond}})
		require.NoError(t, err)
		defer b.Close()
		var stallA atomic.Bool
		var canceled atomic.Int64
		p, err := NewProxy(b, ProxyOptions[*url.URL]{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Host == "a.invalid" && stallA.Load() {
				<-r.Context().Done()
				canceled.Add(1)
				return nil, r.Context().Err()
			}
			time.Sleep(time.Millisecond)
			return &http.Response{StatusCode: http.StatusOK, Header: http.Header{},
				Body: io.NopCloser(strings.NewReader(r.URL.Host)), Request: r}, nil
		})})
		require.NoError(t, err)
		for range 10 { // deposits for the hedge budget
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			require.Equal(t, http.StatusOK, rec.Code)
		}
		stallA.Store(true)
		start := time.Now()
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		assert.Equal(t, http.StatusOK, rec.Code)
		assert.Equal(t, "b.invalid", rec.Body.String())
		assert.Equal(t, 11*time.Millisecond, time.Since(start))
		synctest.Wait()
		assert.EqualValues(t, 1, canceled.Load(), "the stalled attempt was canceled")
		assert.Equal(t, RetryStats{Requests: 11, HedgesSent: 1, HedgesWon: 1}, b.RetryStats())
		for _, s := range b.Stats() {
			assert.Zero(t, s.Active, s.Name)
			assert.True(t, s.Healthy, "%s: a canceled loser is not a failure", s.Name)
		}
	})
}

func TestDefaultProxyHedge(t *testing.T) {
	for method, want := range map[string]bool{"GET": true, "HEAD": true, "OPTIONS": true, "PUT": false, "POST": false, "DELETE": false} {
		assert.Equal(t, want, defaultProxyHedge(httptest.NewRequest(method, "/", nil)), method)
	}
}
