package breaker

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTransport(t *testing.T) {
	var status atomic.Int64
	status.Store(http.StatusOK)
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	var recorded []error
	b, err := New(Options{WindowSize: 3, MinCalls: 3, Hooks: Hooks{OnOutcome: func(_ context.Context, o OutcomeInfo) {
		if o.Result == Failure {
			recorded = append(recorded, o.Err)
		}
	}}})
	require.NoError(t, err)
	client := &http.Client{Transport: &Transport{Breaker: b}}
	get := func() (int, error) {
		resp, err := client.Get(srv.URL)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	tests := []struct {
		name       string
		serverSays int
		wantStatus int
		wantOpen   bool
		wantState  State
	}{
		{"healthy", http.StatusOK, http.StatusOK, false, Closed},
		{"client errors are not the server's failures", http.StatusNotFound, http.StatusNotFound, false, Closed},
		{"first 503 passes through", http.StatusServiceUnavailable, http.StatusServiceUnavailable, false, Closed},
		{"second 503 trips (2 of 3)", http.StatusServiceUnavailable, http.StatusServiceUnavailable, false, Open},
		{"open: the server is not called", http.StatusOK, 0, true, Open},
	}
	for _, tt := range tests {
		status.Store(int64(tt.serverSays))
		before := hits.Load()
		code, err := get()
		assert.Equal(t, tt.wantStatus, code, tt.name)
		assert.Equal(t, tt.wantOpen, errors.Is(err, ErrOpen), "%s: %v", tt.name, err)
		assert.Equal(t, tt.wantState, b.State(), tt.name)
		assert.Equal(t, !tt.wantOpen, hits.Load() == before+1, "%s: server hit", tt.name)
	}
	require.Len(t, recorded, 2)
	var se *StatusError
	require.ErrorAs(t, recorded[0], &se)
	assert.Equal(t, http.StatusServiceUnavailable, se.StatusCode)
	assert.Equal(t, "breaker: server answered 503 Service Unavailable", se.Error())
}

func TestTransportCustomFailureAndNilBreaker(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	b, err := New(Options{WindowSize: 1, MinCalls: 1})
	require.NoError(t, err)
	tr := &Transport{Breaker: b, IsFailure: func(r *http.Response) bool { return r.StatusCode == http.StatusTooManyRequests }}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, Open, b.State())

	_, err = (&Transport{}).RoundTrip(req)
	assert.ErrorIs(t, err, ErrNilBreaker)
}
