package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/girder-go/girder/replica"
)

// tourReplicaDSNs, when the primary is set (flags -postgres and -replicas), makes the replica
// chapter route over real PostgreSQL servers instead of in-process stand-ins.
var tourReplicaDSNs struct {
	primary  string
	replicas []string
}

// tourReplicaReal routes real queries: a write on the primary, a read that carries its token and
// so sees it, and reads spread over the replicas.
func tourReplicaReal(ctx context.Context, w io.Writer) error {
	var mu sync.Mutex
	var routes []string
	r, err := replica.Open(ctx, tourReplicaDSNs.primary, tourReplicaDSNs.replicas, replica.Options{
		CheckInterval: 200 * time.Millisecond,
		Hooks: replica.Hooks{OnRoute: func(_ context.Context, rt replica.RouteInfo) {
			mu.Lock()
			defer mu.Unlock()
			routes = append(routes, fmt.Sprintf("%s (%s)", rt.Node, rt.Reason))
		}},
	})
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Ready(ctx); err != nil {
		return err
	}
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		return routes[len(routes)-1]
	}
	fmt.Fprintf(w, "Real servers: a primary and %d replica(s).\n", len(tourReplicaDSNs.replicas))
	for _, st := range r.Status() {
		fmt.Fprintf(w, "  %-12s role %-8s up=%v lag=%d bytes\n", st.Name, st.Role, st.Up, st.LagBytes)
	}
	if _, err := r.Exec(ctx, "CREATE TABLE IF NOT EXISTS girder_tour (id int PRIMARY KEY, n int NOT NULL)"); err != nil {
		return err
	}
	_, tok, err := r.ExecToken(ctx, "INSERT INTO girder_tour VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET n = girder_tour.n + 1")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  a write                                      → %s, token %s\n", last(), tok)

	var n int
	read := replica.WithTokenPolicy(ctx, tok, replica.TokenPolicy{Wait: 2 * time.Second})
	if err := r.ReadQueryRow(read, "SELECT n FROM girder_tour WHERE id = 1").Scan(&n); err != nil {
		return err
	}
	fmt.Fprintf(w, "  read with the token (waits up to 2 s)        → %s: n = %d\n", last(), n)

	var spread []string
	for range 4 {
		if err := r.ReadQueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
			return err
		}
		spread = append(spread, last())
	}
	fmt.Fprintf(w, "  four reads without a token                   → %s\n", strings.Join(spread, ", "))
	return nil
}
