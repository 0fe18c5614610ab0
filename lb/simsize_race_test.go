//go:build race

package lb

import "time"

// simRequests is smaller under the race detector, which slows every atomic operation down.
const simRequests = 30_000

// contractPicks is the number of picks of each case of TestContractSurvivorsShareEvenly.
const contractPicks = 6_000

// errorRunFor is how long (in fake time) TestContractRandomErrorsKeepService runs each policy,
// unless GIRDER_SOAK says otherwise.
const errorRunFor = 15 * time.Second

// hedgeSimRequests is the number of requests per run of TestSimulationHedging.
const hedgeSimRequests = 5_000
