//go:build !race

package lb

import "time"

// simRequests is the number of simulated requests per policy and scenario.
const simRequests = 100_000

// contractPicks is the number of picks of each case of TestContractSurvivorsShareEvenly.
const contractPicks = 30_000

// errorRunFor is how long (in fake time) TestContractRandomErrorsKeepService runs each policy,
// unless GIRDER_SOAK says otherwise.
const errorRunFor = time.Minute

// hedgeSimRequests is the number of requests per run of TestSimulationHedging.
const hedgeSimRequests = 20_000
