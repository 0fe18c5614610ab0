package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/girder-go/girder/internal/testenv"
	"github.com/girder-go/girder/replica"
	"github.com/stretchr/testify/require"
)

// TestIntegration runs two instances against a real PostgreSQL primary with two streaming
// replicas and a real Redis, as main does with -postgres, -replicas and -redis: the table is
// created, creates and updates go to the primary and hand back an LSN token, a read carrying it
// sees the write at once, reads are served by the replicas and the caches, and the rate limit is
// shared by both instances.
func TestIntegration(t *testing.T) {
	cl := testenv.StartPostgresCluster(t, 2)
	rd := testenv.StartRedis(t)
	cfg := config{
		postgres: cl.Primary.DSN(t),
		replicas: []string{cl.Replicas[0].DSN(t), cl.Replicas[1].DSN(t)},
		redis:    rd.MustAddr(t),
		rate:     0.1,
		burst:    6,
		rywWait:  50 * time.Millisecond,
	}
	a := start(t, cfg)
	b := start(t, cfg)

	// The router found the primary and two fit replicas, which have replayed the CREATE TABLE
	// (a replica that has not received it yet counts as fit: it is not behind on anything it
	// knows of, and would answer "relation does not exist").
	require.Eventually(t, func() bool {
		st := a.stats()
		caughtUp := 0
		for _, n := range st.Replicas {
			if n.Fit && n.LagBytes == 0 && n.LSN > 0 {
				caughtUp++
			}
		}
		return len(st.Replicas) == 3 && caughtUp == 2
	}, 30*time.Second, 20*time.Millisecond)
	t.Logf("replicas: %+v", a.stats().Replicas)

	// Create: the answer carries the token of the insert, as a header and a cookie.
	u, r := a.create("Barbara Liskov", "barbara@example.com", "traceparent", callerTraceparent)
	tok1 := r.header.Get(tokenHeader)
	_, err := replica.ParseToken(tok1)
	require.NoError(t, err)
	require.NotEmpty(t, tok1)
	require.Contains(t, r.header.Get("Set-Cookie"), tokenCookie+"="+tok1)
	require.Eventually(t, func() bool { return len(a.outbox()) == 1 }, wait, 10*time.Millisecond)

	// Straight from the database with the token: a replica that has replayed the insert, or the
	// primary; never a replica that might not have it.
	r = a.get(u.ID, "Cache-Control", "no-cache", tokenHeader, tok1)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, u, r.user(t))
	requireTokenRoute(t, r)

	// Through the caches: A wrote through its L1, B finds the user in Redis, then in its L1.
	require.Equal(t, "memory", a.get(u.ID).header.Get("X-Cache"))
	require.Equal(t, "redis", b.get(u.ID).header.Get("X-Cache"))
	require.Equal(t, "memory", b.get(u.ID).header.Get("X-Cache"))

	// Update, then read your write at once, from the database through the token, and through A's
	// cache.
	r = a.update(u.ID, "Barbara H. Liskov", "liskov@example.com", tokenHeader, tok1)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	tok2 := r.header.Get(tokenHeader)
	t2, err := replica.ParseToken(tok2)
	require.NoError(t, err)
	t1, _ := replica.ParseToken(tok1)
	require.Greater(t, t2.LSN(), t1.LSN())
	r = a.get(u.ID, "Cache-Control", "no-cache", tokenHeader, tok2)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, "Barbara H. Liskov", r.user(t).Name)
	requireTokenRoute(t, r)
	require.Equal(t, "liskov@example.com", a.get(u.ID).user(t).Email)
	// B's L1 copy is dropped by the broadcast, within one pub/sub delivery.
	require.Eventually(t, func() bool { return b.get(u.ID).user(t).Name == "Barbara H. Liskov" }, wait, 5*time.Millisecond)

	// A read with no token may go to any fit replica; the replicas catch up with the update.
	require.Eventually(t, func() bool {
		r := b.get(u.ID, "Cache-Control", "no-cache")
		return r.code == http.StatusOK && strings.Contains(r.header.Get("X-DB-Route"), "reason=replica") &&
			r.user(t).Name == "Barbara H. Liskov"
	}, wait, 20*time.Millisecond)

	// The trace of the create holds the insert, routed to the primary.
	var spans []spanView
	require.Eventually(t, func() bool {
		spans = a.spans(callerTrace)
		_, ok := findSpan(spans, "send welcome e-mail")
		return ok
	}, wait, 10*time.Millisecond)
	save, ok := findSpan(spans, "db save")
	require.True(t, ok)
	require.Equal(t, "primary", save.Attributes["db.node"])
	require.Equal(t, "write", save.Attributes["db.route"])

	// One client's bucket lives in Redis: both instances spend it.
	for i := range cfg.burst {
		in := []*instance{a, b}[i%2]
		require.Equal(t, http.StatusOK, in.get(u.ID, apiKeyHeader, "shared").code, "request %d", i)
	}
	r = b.get(u.ID, apiKeyHeader, "shared")
	require.Equal(t, http.StatusTooManyRequests, r.code)
	require.NotEmpty(t, r.header.Get("Retry-After"))

	a.stop()
	b.stop()
}

// requireTokenRoute checks that a read carrying a token went where the token allows.
func requireTokenRoute(t *testing.T, r reply) {
	t.Helper()
	route := r.header.Get("X-DB-Route")
	t.Logf("read with a token went to %s", route)
	require.Regexp(t, `reason=token-(replica|waited|fallback)$`, route)
}
