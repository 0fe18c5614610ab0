package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/girder-go/girder/examples/internal/promhttpx/promtest"
	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/shard"
)

// parseMetrics parses the text format -metrics writes.
func parseMetrics(t *testing.T, text []byte) promtest.Families {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return mfs
}

// TestMetricsFile checks -metrics without servers: the range router's table and a shard router's
// routing decisions, hooked under the shard's name, written to a file and to the output.
func TestMetricsFile(t *testing.T) {
	m, err := newMetrics()
	if err != nil {
		t.Fatal(err)
	}
	rr, err := shard.NewRangeRouter(initialRanges(3000, 3))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.watch(&Store{ranges: rr}); err != nil {
		t.Fatal(err)
	}
	if _, err := rr.Split(1500, 1, 3); err != nil {
		t.Fatal(err)
	}
	shards := m.hook([]ShardConfig{{Name: "shard-0"}, {}})
	if shards[1].Name != "" {
		t.Fatal("hook changed the caller's configuration")
	}
	hooks := joinHooks(routerOptions().Hooks, shards[1].RouterHooks)
	for range 3 {
		hooks.OnRoute(context.Background(), replica.RouteInfo{Node: "shard-1-primary", Reason: replica.ReasonWrite})
	}

	path := filepath.Join(t.TempDir(), "shardedpg.prom")
	var out bytes.Buffer
	if err := m.write(path, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.write("-", &out); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(text, out.Bytes()) {
		t.Errorf("the file and the output differ:\n%s\n---\n%s", text, out.Bytes())
	}
	f := parseMetrics(t, text)
	if v := f.Value(t, "girder_shard_range_table_version", "router", rangesName); v != 2 {
		t.Errorf("table version %v, want 2 (one split)", v)
	}
	if v := f.Value(t, "girder_shard_range_table_ranges", "router", rangesName); v != 4 {
		t.Errorf("%v ranges, want 4", v)
	}
	if v := f.Value(t, "girder_replica_routes_total", "router", "shard-1", "node", "shard-1-primary", "reason", "write"); v != 3 {
		t.Errorf("%v writes routed, want 3:\n%s", v, f.Dump("girder_replica_routes_total"))
	}
}
