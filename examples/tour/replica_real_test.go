package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/girder-go/girder/internal/testenv"
)

// TestTourReplicaOnRealServers runs the replica chapter against a real primary with a streaming
// replica, as `-postgres DSN -replicas DSN` does.
func TestTourReplicaOnRealServers(t *testing.T) {
	cl := testenv.StartPostgresCluster(t, 1)
	tourReplicaDSNs.primary = cl.Primary.DSN(t)
	tourReplicaDSNs.replicas = []string{cl.Replicas[0].DSN(t)}
	t.Cleanup(func() { tourReplicaDSNs.primary, tourReplicaDSNs.replicas = "", nil })

	var out bytes.Buffer
	if err := runTour(context.Background(), &out, []string{"replica"}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Log("\n" + out.String())
	for _, want := range []string{
		"Real servers: a primary and 1 replica(s).",
		"read with the token (waits up to 2 s)",
		": n = 1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for line := range strings.Lines(out.String()) {
		if strings.Contains(line, "four reads without a token") && strings.Contains(line, "primary") {
			t.Errorf("a read without a token went to the primary although a replica is up: %s", line)
		}
	}
}
