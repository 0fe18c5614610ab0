package lb

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The simulation: simServers servers, each with simWorkers workers in front of a FIFO queue and
// exponential service times averaging simService, except one server slowed down by a factor.
// Requests arrive as a Poisson stream at a rate that loads the whole fleet (its real capacity,
// the slow server counted as the fraction it is) to the scenario's load. Each request is picked
// by the balancer under test, and its Done carries the latency the simulation computed, so the
// policies see exactly what they would see in production. Everything is driven by fixed seeds.
const (
	simServers = 10
	simWorkers = 4
	simService = 10 * time.Millisecond
)

type simScenario struct {
	name string
	slow float64 // slowdown of server 0
	load float64 // offered load as a fraction of the fleet's capacity
}

// simScenarios are the two of ANCHORS.md, where round robin cannot keep up with the slow server
// (its tenth of the traffic exceeds what that server can do), and one at a load where it can.
var simScenarios = []simScenario{
	{"one 10x slower, 70% load", 10, 0.70},
	{"one 2x slower, 80% load", 2, 0.80},
	{"one 10x slower, 7% load", 10, 0.07},
}

type simResult struct {
	p50, p99, p999 time.Duration
	bounded        bool // the backlog at the end stayed small: the policy keeps up
}

type simReq struct {
	arrived time.Duration
	lease   Lease[int]
}

type simServer struct {
	mean  float64 // mean service time, ns
	busy  int
	queue []simReq
}

// simulate runs requests through a balancer with the given policy and returns the latency
// percentiles of the requests after the first tenth (warm-up).
func simulate(t testing.TB, policy Policy, sc simScenario, requests int) simResult {
	backends := make([]Backend[int], simServers)
	for i := range backends {
		backends[i] = Backend[int]{Name: fmt.Sprintf("s%d", i), Value: i}
	}
	b, err := New(Options[int]{Policy: policy, Backends: backends, Seed: 42, Passive: Passive{MaxFails: -1}})
	require.NoError(t, err)
	defer b.Close()

	rng := rand.New(rand.NewPCG(7, uint64(policy)))
	servers := make([]simServer, simServers)
	capacity := 0.0
	for i := range servers {
		servers[i].mean = float64(simService)
		if i == 0 {
			servers[i].mean *= sc.slow
		}
		capacity += simWorkers / servers[i].mean
	}
	arrivalMean := 1 / (sc.load * capacity) // ns between arrivals
	var events finishHeap
	var now time.Duration
	next := time.Duration(rng.ExpFloat64() * arrivalMean)
	lat := make([]time.Duration, 0, requests)
	warm := requests / 10
	start := func(s int, r simReq, at time.Duration) {
		servers[s].busy++
		d := time.Duration(rng.ExpFloat64() * servers[s].mean)
		heap.Push(&events, finishEvent{at: at + d, server: s, req: r})
	}
	// Arrivals and completions in time order until the last request has arrived; the backlog
	// left then says whether the policy kept up.
	for arrived := 0; arrived < requests; {
		if events.Len() == 0 || next <= events[0].at {
			now = next
			next += time.Duration(rng.ExpFloat64() * arrivalMean)
			arrived++
			l, err := b.PickKey(strconv.Itoa(arrived)) // a key per request, for ConsistentHash
			require.NoError(t, err)
			s := l.Backend()
			r := simReq{arrived: now, lease: l}
			if servers[s].busy < simWorkers {
				start(s, r, now)
			} else {
				servers[s].queue = append(servers[s].queue, r)
			}
			continue
		}
		e := heap.Pop(&events).(finishEvent)
		now = e.at
		d := now - e.req.arrived
		e.req.lease.Done(nil, d) // what a client measures: queueing plus service
		lat = append(lat, d)
		sv := &servers[e.server]
		sv.busy--
		if len(sv.queue) > 0 {
			r := sv.queue[0]
			sv.queue = sv.queue[1:]
			start(e.server, r, now)
		}
	}
	backlog := events.Len()
	for _, sv := range servers {
		backlog += len(sv.queue)
	}
	lat = lat[min(warm, len(lat)):]
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[int(math.Ceil(p*float64(len(lat))))-1] }
	return simResult{p50: q(0.50), p99: q(0.99), p999: q(0.999), bounded: backlog < requests/100}
}

type finishEvent struct {
	at     time.Duration
	server int
	req    simReq
}

type finishHeap []finishEvent

func (h finishHeap) Len() int           { return len(h) }
func (h finishHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h finishHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *finishHeap) Push(x any)        { *h = append(*h, x.(finishEvent)) }
func (h *finishHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// TestSimulationTailLatency asserts the targets of ANCHORS.md on the simulation: P2C peak-EWMA's
// p99 within 1.2× of full-scan least connections, and at least 3× better than round robin
// (which, where it cannot keep up with the slow server, is reported as unbounded).
func TestSimulationTailLatency(t *testing.T) {
	for _, sc := range simScenarios {
		t.Run(sc.name, func(t *testing.T) {
			res := map[Policy]simResult{}
			var tb strings.Builder
			fmt.Fprintf(&tb, "%s (%d requests)\n%-22s %10s %10s %10s\n", sc.name, simRequests, "policy", "p50", "p99", "p99.9")
			for _, p := range Policies() {
				r := simulate(t, p, sc, simRequests)
				res[p] = r
				mark := ""
				if !r.bounded {
					mark = "  unbounded (backlog grows)"
				}
				fmt.Fprintf(&tb, "%-22s %10v %10v %10v%s\n", p, r.p50.Round(time.Millisecond/10), r.p99.Round(time.Millisecond/10), r.p999.Round(time.Millisecond/10), mark)
			}
			t.Log("\n" + tb.String())
			ewma, lc, rr := res[P2CPeakEWMA], res[LeastConnections], res[RoundRobin]
			require.True(t, ewma.bounded, "p2c-peak-ewma must keep up")
			require.LessOrEqual(t, float64(ewma.p99), 1.2*float64(lc.p99), "p2c-peak-ewma p99 within 1.2x of least-connections")
			if rr.bounded {
				require.LessOrEqual(t, 3*float64(ewma.p99), float64(rr.p99), "p2c-peak-ewma p99 at least 3x better than round robin")
			}
		})
	}
}
