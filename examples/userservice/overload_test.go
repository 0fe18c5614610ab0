package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// heldStore is a userStore whose reads wait at release, telling reached as they arrive: a
// database that has slowed to a stop.
type heldStore struct {
	userStore
	reached chan struct{}
	release chan struct{}
}

func (s *heldStore) Get(ctx context.Context, id int64) (User, error) {
	s.reached <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
		return User{}, ctx.Err()
	}
	return s.userStore.Get(ctx, id)
}

// TestAdaptiveLimitShedsOverload forces overload on the adaptive limit: with its ceiling at 2
// and the database holding every read, two reads are in flight, a third waits its 50 ms in the
// queue and is answered 503 with Retry-After without reaching the database. Once the database
// answers, reads pass again.
func TestAdaptiveLimitShedsOverload(t *testing.T) {
	store := &heldStore{userStore: newMemStore(), reached: make(chan struct{}, 8), release: make(chan struct{})}
	in := start(t, config{adaptiveMax: 2, store: store})
	get := func(id int) *http.Response {
		resp, err := in.client.Get(fmt.Sprintf("%s/users/%d", in.base, id))
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	held := make(chan int, 2)
	for id := range 2 {
		go func() { held <- get(id + 1).StatusCode }()
	}
	<-store.reached
	<-store.reached // both reads are at the database
	resp := get(3)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Empty(t, store.reached, "the shed read never reached the database")
	close(store.release)
	for range 2 {
		require.Equal(t, http.StatusNotFound, <-held) // no such users: answered, not shed
	}
	require.Equal(t, http.StatusNotFound, get(4).StatusCode, "admitted again once the database answers")
	in.stop()
}
