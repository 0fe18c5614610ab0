//go:build !race

package lb

// simRequests is the number of simulated requests per policy and scenario.
const simRequests = 100_000
