// Package promopts checks the options every girder Prometheus collector shares, so that each
// collector package (breakerprom, lbprom, replicaprom, eventbusprom) reports the same problems
// in the same words.
package promopts

import (
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Check returns the problems with a collector's histogram buckets and constant labels, each
// prefixed with pkg: buckets that do not increase, and constant labels that clash with own, the
// labels the collector sets itself.
func Check(pkg string, buckets []float64, constLabels prometheus.Labels, own ...string) []error {
	var errs []error
	for i := 1; i < len(buckets); i++ {
		if !(buckets[i] > buckets[i-1]) {
			errs = append(errs, fmt.Errorf("%s: Buckets[%d] %v does not exceed Buckets[%d] %v", pkg, i, buckets[i], i-1, buckets[i-1]))
		}
	}
	for name := range constLabels {
		if slices.Contains(own, name) {
			errs = append(errs, fmt.Errorf("%s: ConstLabels: %q is a label of the collector's own", pkg, name))
		}
	}
	return errs
}
