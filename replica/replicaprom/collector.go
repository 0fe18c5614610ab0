package replicaprom

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/girder-go/girder/internal/promopts"
	"github.com/girder-go/girder/replica"
)

// Options configures a Collector. The zero value is ready to use.
type Options struct {
	// ConstLabels are added to every series, for a process that runs one collector per
	// database cluster, say. Their names must not be router, node, role or reason.
	ConstLabels prometheus.Labels
}

// Validate reports every problem with o, or nil; New calls it.
func (o *Options) Validate() error {
	return errors.Join(promopts.Check("replicaprom", nil, o.ConstLabels, "router", "node", "role", "reason")...)
}

// StatusSource is what Watch reads: a *replica.Router.
type StatusSource interface {
	Status() []replica.NodeStatus
}

// Collector is a prometheus.Collector for replica routers. Make one with New, feed it with
// Watch and Hooks, and register it once.
type Collector struct {
	routes *prometheus.CounterVec
	roles  *prometheus.CounterVec

	up, fit, role, lagBytes, lagSeconds, check *prometheus.Desc

	mu      sync.Mutex
	watched map[string]StatusSource
}

var roles = [...]replica.Role{replica.RolePrimary, replica.RoleReplica, replica.RoleUnknown}

// numReasons is the number of replica.Reason values.
const numReasons = int(replica.ReasonTokenFallback) + 1

// New returns a Collector, or every problem with opts.
func New(opts Options) (*Collector, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	node := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append([]string{"router", "node"}, extra...), opts.ConstLabels)
	}
	return &Collector{
		routes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_replica_routes_total",
			Help:        "Queries the router sent to the node, by reason (write, replica, fallback, token-replica, token-waited, token-fallback).",
			ConstLabels: opts.ConstLabels,
		}, []string{"router", "node", "reason"}),
		roles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "girder_replica_role_changes_total",
			Help:        "Changes of the node's role between primary and replica.",
			ConstLabels: opts.ConstLabels,
		}, []string{"router", "node"}),
		up:         node("girder_replica_node_up", "Whether the router's last checks reached the node (1) or not (0)."),
		fit:        node("girder_replica_node_fit", "Whether the node is a replica that reads may go to (1) or not (0)."),
		role:       node("girder_replica_node_role", "Whether the node has the role (1) or not (0).", "role"),
		lagBytes:   node("girder_replica_node_lag_bytes", "Log bytes the node is behind the most advanced node."),
		lagSeconds: node("girder_replica_node_lag_seconds", "The node's replay delay."),
		check:      node("girder_replica_node_check_duration_seconds", "Duration of the node's last successful check."),
		watched:    map[string]StatusSource{},
	}, nil
}

// Hooks returns replica hooks that feed the counters of the router called name; set them in
// that router's Options.Hooks. To keep hooks of your own as well, call both from one function.
func (c *Collector) Hooks(name string) replica.Hooks {
	var counters sync.Map // node name → *[numReasons]prometheus.Counter
	countersOf := func(node string) *[numReasons]prometheus.Counter {
		if v, ok := counters.Load(node); ok {
			return v.(*[numReasons]prometheus.Counter)
		}
		var cs [numReasons]prometheus.Counter
		for i := range cs {
			cs[i] = c.routes.WithLabelValues(name, node, replica.Reason(i).String())
		}
		v, _ := counters.LoadOrStore(node, &cs)
		return v.(*[numReasons]prometheus.Counter)
	}
	return replica.Hooks{
		OnRoute: func(_ context.Context, info replica.RouteInfo) {
			if int(info.Reason) < numReasons {
				countersOf(info.Node)[info.Reason].Inc()
				return
			}
			c.routes.WithLabelValues(name, info.Node, info.Reason.String()).Inc()
		},
		OnNodeChange: func(info replica.NodeChangeInfo) {
			roles := c.roles.WithLabelValues(name, info.New.Name)
			if info.Old.Role != replica.RoleUnknown && info.New.Role != replica.RoleUnknown && info.Old.Role != info.New.Role {
				roles.Inc()
			}
		},
	}
}

// Watch adds r, whose nodes' Status is read at each scrape under the label router=name. It
// fails when name is empty, r is nil, or name is already watched.
func (c *Collector) Watch(name string, r StatusSource) error {
	switch {
	case name == "":
		return errors.New("replicaprom: Watch: empty name")
	case r == nil:
		return fmt.Errorf("replicaprom: Watch %q: nil router", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.watched[name]; ok {
		return fmt.Errorf("replicaprom: Watch %q: already watched", name)
	}
	c.watched[name] = r
	return nil
}

// Unwatch removes the router watched as name; its gauges disappear from the next scrape. The
// counters that its hooks fed stay, as counters do.
func (c *Collector) Unwatch(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.watched, name)
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.fit, c.role, c.lagBytes, c.lagSeconds, c.check} {
		ch <- d
	}
	c.routes.Describe(ch)
	c.roles.Describe(ch)
}

// Collect implements prometheus.Collector: it reads every watched router's Status.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	watched := make(map[string]StatusSource, len(c.watched))
	for name, r := range c.watched {
		watched[name] = r
	}
	c.mu.Unlock()
	for name, r := range watched {
		for _, st := range r.Status() {
			gauge := func(d *prometheus.Desc, v float64, extra ...string) {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{name, st.Name}, extra...)...)
			}
			gauge(c.up, bit(st.Up))
			gauge(c.fit, bit(st.Fit))
			for _, role := range roles {
				gauge(c.role, bit(st.Role == role), role.String())
			}
			gauge(c.lagBytes, float64(st.LagBytes))
			gauge(c.lagSeconds, st.LagTime.Seconds())
			gauge(c.check, st.Latency.Seconds())
		}
	}
	c.routes.Collect(ch)
	c.roles.Collect(ch)
}

func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
