//go:build race

package shard

// propertyKeys is smaller under the race detector, which slows lookups about tenfold.
const propertyKeys = 200_000
