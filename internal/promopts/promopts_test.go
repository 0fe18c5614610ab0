package promopts

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		buckets []float64
		labels  prometheus.Labels
		want    []string
	}{
		{"zero", nil, nil, nil},
		{"increasing", []float64{0.1, 1}, prometheus.Labels{"env": "prod"}, nil},
		{"equal buckets", []float64{1, 1}, nil, []string{"x: Buckets[1] 1 does not exceed Buckets[0] 1"}},
		{"own label", nil, prometheus.Labels{"le": "1"}, []string{`x: ConstLabels: "le" is a label of the collector's own`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, err := range Check("x", tt.buckets, tt.labels, "node", "le") {
				got = append(got, err.Error())
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
