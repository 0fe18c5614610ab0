package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/girder-go/girder/shard"
)

// nodeView is one node in GET /admin/nodes.
type nodeView struct {
	Name    string `json:"name"`
	Addr    string `json:"addr"`
	InRing  bool   `json:"in_ring"`
	Breaker string `json:"breaker"` // closed, open or half-open
	Trips   int    `json:"trips"`   // trips since the breaker last closed after a probe
	Keys    *int64 `json:"keys"`    // keys in the node's database; null when it cannot be asked
	Error   string `json:"error,omitempty"`
}

// nodesView is the reply of GET /admin/nodes.
type nodesView struct {
	Replicas int        `json:"replicas"` // copies of each session
	Ring     []string   `json:"ring"`     // the members, as the ring lists them
	Nodes    []nodeView `json:"nodes"`
}

// nodes reports the ring's membership and, for every node, its breaker and how many keys it
// holds. The counts are asked of all nodes at once with shard.Scatter under the Collect policy,
// so a dead node shows up as an error beside the others' counts instead of failing the page.
//
// In cluster mode it shows the cluster instead (clusterView): each master with its slot ranges
// and replicas, and every node's number of keys.
func (a *api) nodes(w http.ResponseWriter, r *http.Request) {
	if a.cluster != nil {
		v, err := a.cluster.view(r.Context())
		if err != nil {
			a.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
		return
	}
	all := a.members.nodes
	results, _ := shard.Scatter(r.Context(), all, func(ctx context.Context, n *node) (int64, error) {
		return n.countKeys(ctx)
	}, shard.ScatterOptions[*node]{Policy: shard.Collect})

	v := nodesView{Replicas: a.ring.replicas, Ring: []string{}, Nodes: make([]nodeView, len(all))}
	for _, n := range a.members.ring.Nodes() {
		v.Ring = append(v.Ring, n.name)
	}
	for i, n := range all {
		nv := nodeView{Name: n.name, Addr: n.addr, InRing: n.inRing.Load(),
			Breaker: n.breaker.State().String(), Trips: n.breaker.Counts().Trips}
		if res := results[i]; res.Err == nil {
			nv.Keys = &res.Value
		} else {
			nv.Error = res.Err.Error()
		}
		v.Nodes[i] = nv
	}
	writeJSON(w, http.StatusOK, v)
}

// kill stops an embedded node (POST /admin/nodes/{name}/kill). The ring is left alone: watch
// the breaker and the membership loop take the node out.
func (a *api) kill(w http.ResponseWriter, r *http.Request) {
	a.fleetAction(w, r, a.fleet.kill)
}

// revive restarts an embedded node with the data it had (POST /admin/nodes/{name}/revive).
func (a *api) revive(w http.ResponseWriter, r *http.Request) {
	a.fleetAction(w, r, a.fleet.revive)
}

func (a *api) fleetAction(w http.ResponseWriter, r *http.Request, action func(name string) error) {
	name := r.PathValue("name")
	switch err := action(name); {
	case err == nil:
		writeJSON(w, http.StatusAccepted, map[string]string{"node": name})
	case errors.Is(err, errUnknownNode):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, errNotEmbedded):
		writeError(w, http.StatusNotImplemented, err)
	default:
		writeError(w, http.StatusInternalServerError, err)
	}
}
