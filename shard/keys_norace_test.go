//go:build !race

package shard

// propertyKeys is the key count of the balance and movement properties: 1 M, as the anchors say.
const propertyKeys = 1_000_000
