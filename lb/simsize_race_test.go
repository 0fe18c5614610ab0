//go:build race

package lb

// simRequests is smaller under the race detector, which slows every atomic operation down.
const simRequests = 30_000
