package breaker

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCountWindow(t *testing.T) {
	const F, S, FS = bitFailure, bitSlow, bitFailure | bitSlow
	tests := []struct {
		name                  string
		size                  int
		outcomes              []uint32
		calls, failures, slow int64
	}{
		{"empty", 3, nil, 0, 0, 0},
		{"partly filled", 3, []uint32{0, F}, 2, 1, 0},
		{"full", 3, []uint32{F, S, 0}, 3, 1, 1},
		{"wraps and forgets", 3, []uint32{F, F, FS, 0, 0}, 3, 1, 1},
		{"all overwritten by successes", 2, []uint32{FS, FS, 0, 0}, 2, 0, 0},
		{"size one", 1, []uint32{F, 0, S}, 1, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newCountWindow(tt.size)
			for _, o := range tt.outcomes {
				w.record(o, 0)
			}
			calls, failures, slow := w.counts(0)
			assert.Equal(t, []int64{tt.calls, tt.failures, tt.slow}, []int64{calls, failures, slow})
		})
	}
}

func TestTimeWindow(t *testing.T) {
	type rec struct {
		at int64
		o  uint32
	}
	tests := []struct {
		name                  string
		recs                  []rec
		at                    int64
		calls, failures, slow int64
	}{
		{"empty", nil, 0, 0, 0, 0},
		{"one bucket", []rec{{0, bitFailure}, {5, 0}}, 9, 2, 1, 0},
		{"spans the window", []rec{{0, bitFailure}, {95, bitSlow}}, 99, 2, 1, 1},
		{"oldest bucket expires", []rec{{0, bitFailure}, {95, bitSlow}}, 100, 1, 0, 1},
		{"reused bucket starts afresh", []rec{{3, bitFailure}, {103, 0}}, 105, 1, 0, 0},
		{"everything expired", []rec{{3, bitFailure}, {50, 0}}, 1000, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTimeWindow(100, 10) // ten buckets of 10 ns
			for _, r := range tt.recs {
				w.record(r.o, r.at)
			}
			calls, failures, slow := w.counts(tt.at)
			assert.Equal(t, []int64{tt.calls, tt.failures, tt.slow}, []int64{calls, failures, slow})
		})
	}
}
