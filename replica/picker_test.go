package replica

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func cands() []Candidate {
	return []Candidate{
		{Name: "a", Latency: 3 * time.Millisecond, LagBytes: 100, LagTime: time.Second},
		{Name: "b", Latency: time.Millisecond, LagBytes: 50, LagTime: 2 * time.Second},
		{Name: "c", Latency: time.Millisecond, LagBytes: 50, LagTime: time.Second},
		{Name: "d", Latency: 2 * time.Millisecond, LagBytes: 900},
	}
}

func TestPickers(t *testing.T) {
	tests := []struct {
		name   string
		picker Picker
		want   []int // successive picks
	}{
		{"round robin", RoundRobin(), []int{0, 1, 2, 3, 0, 1}},
		{"least latency, first of equals", LeastLatency(), []int{1, 1, 1}},
		{"least lag, bytes then time", LeastLag(), []int{2, 2}},
		{"custom", PickerFunc(func(c []Candidate) int { return len(c) - 1 }), []int{3, 3}},
		{"custom out of range", PickerFunc(func([]Candidate) int { return 7 }), []int{0}},
		{"custom negative", PickerFunc(func([]Candidate) int { return -1 }), []int{0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			for range tc.want {
				got = append(got, pick(tc.picker, cands()))
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestRandomPickerCoversAll(t *testing.T) {
	p, c := Random(), cands()
	seen := map[int]int{}
	for range 400 {
		seen[pick(p, c)]++
	}
	assert.Len(t, seen, len(c))
	for i, n := range seen {
		assert.Greater(t, n, 40, "candidate %d picked too rarely", i)
	}
}

func TestOneCandidateNeedsNoPicker(t *testing.T) {
	calls := 0
	p := PickerFunc(func([]Candidate) int { calls++; return 0 })
	assert.Equal(t, 0, pick(p, cands()[:1]))
	assert.Zero(t, calls)
}

func TestRoundRobinsAreIndependent(t *testing.T) {
	a, b := RoundRobin(), RoundRobin()
	c := cands()
	assert.Equal(t, 0, a.Pick(c))
	assert.Equal(t, 1, a.Pick(c))
	assert.Equal(t, 0, b.Pick(c))
}

func BenchmarkPickers(b *testing.B) {
	c := cands()
	for _, bc := range []struct {
		name string
		p    Picker
	}{{"RoundRobin", RoundRobin()}, {"Random", Random()}, {"LeastLatency", LeastLatency()}, {"LeastLag", LeastLag()}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				pick(bc.p, c)
			}
		})
	}
}
