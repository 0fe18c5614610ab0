package backoff

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCeiling(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		attempt int
		want    time.Duration
	}{
		{"zero value first", Policy{}, 0, 100 * time.Millisecond},
		{"zero value doubles", Policy{}, 3, 800 * time.Millisecond},
		{"zero value caps at 10s", Policy{}, 20, 10 * time.Second},
		{"negative attempt is the first", Policy{}, -5, 100 * time.Millisecond},
		{"custom multiplier", Policy{Initial: time.Second, Multiplier: 3, Max: time.Hour}, 2, 9 * time.Second},
		{"multiplier 1 is constant", Policy{Initial: time.Second, Multiplier: 1}, 50, time.Second},
		{"huge attempt does not overflow", Policy{Initial: time.Second, Max: time.Minute}, 1 << 30, time.Minute},
		{"max below default initial", Policy{Max: 10 * time.Millisecond}, 0, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, tt.p.Validate())
			assert.Equal(t, tt.want, tt.p.Ceiling(tt.attempt))
			assert.Equal(t, tt.want, tt.p.Delay(tt.attempt), "no jitter: Delay equals Ceiling")
		})
	}
}

func TestJitterStaysInRange(t *testing.T) {
	p := Policy{Initial: time.Second, Max: time.Minute, Jitter: 0.5}
	seen := map[time.Duration]bool{}
	for attempt := range 4 {
		ceil := p.Ceiling(attempt)
		for range 200 {
			d := p.Delay(attempt)
			require.LessOrEqual(t, d, ceil)
			require.GreaterOrEqual(t, d, ceil/2)
			seen[d] = true
		}
	}
	assert.Greater(t, len(seen), 100, "jitter must vary the delay")
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Policy
		want []string
	}{
		{"negative initial", Policy{Initial: -1}, []string{"Initial -1ns is negative"}},
		{"negative max", Policy{Max: -1}, []string{"Max -1ns is negative"}},
		{"initial above max", Policy{Initial: time.Second, Max: time.Millisecond}, []string{"exceeds Max"}},
		{"multiplier below one", Policy{Multiplier: 0.5}, []string{"Multiplier 0.5"}},
		{"jitter above one", Policy{Jitter: 1.5}, []string{"Jitter 1.5"}},
		{"every problem at once", Policy{Initial: -1, Max: -1, Multiplier: -2, Jitter: -1},
			[]string{"Initial", "Max", "Multiplier", "Jitter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			require.Error(t, err)
			for _, w := range tt.want {
				assert.ErrorContains(t, err, w)
			}
		})
	}
}
