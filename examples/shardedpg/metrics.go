package main

import (
	"context"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/girder-go/girder/replica"
	"github.com/girder-go/girder/replica/replicaprom"
	"github.com/girder-go/girder/shard/shardprom"
)

// rangesName labels the range router's series; each shard's replica router is labelled with the
// shard's name.
const rangesName = "accounts"

// metrics are the collectors of a run with -metrics: the range router through shardprom (its
// table's version and number of ranges) and each shard's replica router through replicaprom
// (its nodes' state, read at the end, and the queries it routed by node and reason, from its
// hooks). The command is a batch job, not a server, so nothing scrapes it: it writes them once,
// at the end of the run, in the text format node_exporter's textfile collector reads.
type metrics struct {
	registry *prometheus.Registry
	shards   *shardprom.Collector
	routers  *replicaprom.Collector
}

func newMetrics() (*metrics, error) {
	m := &metrics{registry: prometheus.NewRegistry()}
	var err error
	if m.shards, err = shardprom.New(shardprom.Options{}); err != nil {
		return nil, err
	}
	if m.routers, err = replicaprom.New(replicaprom.Options{}); err != nil {
		return nil, err
	}
	m.registry.MustRegister(m.shards, m.routers)
	return m, nil
}

// hook returns shards with each one's router hooks set to replicaprom's, under the shard's name.
// The slice is a copy: the caller's configurations are left alone.
func (m *metrics) hook(shards []ShardConfig) []ShardConfig {
	out := make([]ShardConfig, len(shards))
	for i, sc := range shards {
		sc.RouterHooks = m.routers.Hooks(shardName(i, sc))
		out[i] = sc
	}
	return out
}

// watch has the range router and every shard's replica router read when the metrics are written.
func (m *metrics) watch(s *Store) error {
	if err := shardprom.WatchRanges(m.shards, rangesName, s.ranges); err != nil {
		return err
	}
	for _, sh := range s.shards {
		if err := m.routers.Watch(sh.Name, sh.Router); err != nil {
			return err
		}
	}
	return nil
}

// write writes every series in the text format to path, atomically (a temporary file renamed),
// or to stdout when path is "-".
func (m *metrics) write(path string, stdout io.Writer) error {
	if path != "-" {
		if err := prometheus.WriteToTextfile(path, m.registry); err != nil {
			return fmt.Errorf("shardedpg: -metrics: %w", err)
		}
		return nil
	}
	families, err := m.registry.Gather()
	if err != nil {
		return fmt.Errorf("shardedpg: -metrics: %w", err)
	}
	enc := expfmt.NewEncoder(stdout, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return fmt.Errorf("shardedpg: -metrics: %w", err)
		}
	}
	return nil
}

// joinHooks calls a's hooks, then b's; either may have nil fields. Without b's it is a.
func joinHooks(a, b replica.Hooks) replica.Hooks {
	if b.OnNodeChange == nil && b.OnRoute == nil {
		return a
	}
	return replica.Hooks{
		OnNodeChange: func(c replica.NodeChangeInfo) {
			if a.OnNodeChange != nil {
				a.OnNodeChange(c)
			}
			if b.OnNodeChange != nil {
				b.OnNodeChange(c)
			}
		},
		OnRoute: func(ctx context.Context, r replica.RouteInfo) {
			if a.OnRoute != nil {
				a.OnRoute(ctx, r)
			}
			if b.OnRoute != nil {
				b.OnRoute(ctx, r)
			}
		},
	}
}
