package shardprom

import (
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/internal/promopts"
	"github.com/girder-go/girder/shard"
)

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// ConstLabels are added to every series. Their names must not be labels of the collector's
	// own (placement, node, router).
	ConstLabels prometheus.Labels
}

// Validate reports every problem with o, or nil; New calls it.
func (o *Options) Validate() error {
	return errors.Join(promopts.Check("shardprom", nil, o.ConstLabels, "placement", "node", "router")...)
}

// Collector is a prometheus.Collector for the shard types that hold state. Make one with New,
// feed it with WatchBounded and WatchRanges, and register it once.
type Collector struct {
	leases, limit, version, ranges *prometheus.Desc

	mu      sync.Mutex
	bounded map[string]func() (loads map[string]int64, limit int64)
	routers map[string]func() (version uint64, ranges int)
}

// New returns a Collector, or every problem with opts.
func New(opts Options) (*Collector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Collector{
		leases: prometheus.NewDesc("girder_shard_bounded_node_leases",
			"Leases held on the node of a bounded-load placement.", []string{"placement", "node"}, opts.ConstLabels),
		limit: prometheus.NewDesc("girder_shard_bounded_node_lease_limit",
			"The most leases a node of the bounded-load placement may hold now.", []string{"placement"}, opts.ConstLabels),
		version: prometheus.NewDesc("girder_shard_range_table_version",
			"The version of the range router's current table; it grows with each Split, Merge or Replace.", []string{"router"}, opts.ConstLabels),
		ranges: prometheus.NewDesc("girder_shard_range_table_ranges",
			"Ranges in the range router's current table.", []string{"router"}, opts.ConstLabels),
		bounded: map[string]func() (map[string]int64, int64){},
		routers: map[string]func() (uint64, int){},
	}, nil
}

// WatchBounded adds b, whose loads are read at each scrape under the labels placement=name and
// node=nodeName(node); nil nodeName means fmt.Sprint (a string node itself, a fmt.Stringer's
// String), which is what the ring names nodes by when RingOptions.NodeKey is nil. It fails when
// name is empty, b is nil, or name is already watched. (A function rather than a method, as
// methods cannot have type parameters.)
func WatchBounded[N comparable](c *Collector, name string, b *shard.Bounded[N], nodeName func(N) string) error {
	if b == nil && name != "" {
		return fmt.Errorf("shardprom: WatchBounded %q: nil Bounded", name)
	}
	if nodeName == nil {
		nodeName = func(n N) string { return fmt.Sprint(n) }
	}
	return c.watch("WatchBounded", name, func() {
		c.bounded[name] = func() (map[string]int64, int64) {
			loads := map[string]int64{}
			var total int64
			for _, n := range b.Nodes() {
				l := b.Load(n)
				loads[nodeName(n)] = l
				total += l
			}
			return loads, b.Limit(total)
		}
	})
}

// WatchRanges adds r, whose table version and size are read at each scrape under the label
// router=name. It fails when name is empty, r is nil, or name is already watched.
func WatchRanges[K, S any](c *Collector, name string, r *shard.RangeRouter[K, S]) error {
	if r == nil && name != "" {
		return fmt.Errorf("shardprom: WatchRanges %q: nil RangeRouter", name)
	}
	return c.watch("WatchRanges", name, func() {
		c.routers[name] = func() (uint64, int) {
			t := r.Table()
			return t.Version(), len(t.Ranges())
		}
	})
}

func (c *Collector) watch(method, name string, add func()) error {
	if name == "" {
		return fmt.Errorf("shardprom: %s: empty name", method)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, a := c.bounded[name]
	_, b := c.routers[name]
	if a || b {
		return fmt.Errorf("shardprom: %s %q: already watched", method, name)
	}
	add()
	return nil
}

// Unwatch removes the placement or router watched as name; its series disappear from the next
// scrape.
func (c *Collector) Unwatch(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.bounded, name)
	delete(c.routers, name)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.leases, c.limit, c.version, c.ranges} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads every watched placement and router.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	bounded, routers := maps.Clone(c.bounded), maps.Clone(c.routers)
	c.mu.Unlock()
	for name, read := range bounded {
		loads, limit := read()
		for node, l := range loads {
			ch <- prometheus.MustNewConstMetric(c.leases, prometheus.GaugeValue, float64(l), name, node)
		}
		ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(limit), name)
	}
	for name, read := range routers {
		v, n := read()
		ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(v), name)
		ch <- prometheus.MustNewConstMetric(c.ranges, prometheus.GaugeValue, float64(n), name)
	}
}
