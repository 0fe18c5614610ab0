package replica

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	db := newPrimary("x")
	tests := []struct {
		name string
		opts Options
		want []string // every problem is reported
	}{
		{"no primary", Options{}, []string{"replica: Primary.DB is nil"}},
		{"nil replica", Options{Primary: Node{DB: db}, Replicas: []Node{{DB: db}, {}}}, []string{"Replicas[1].DB is nil"}},
		{"duplicate names", Options{Primary: Node{DB: db}, Replicas: []Node{{Name: "primary", DB: db}}},
			[]string{`node name "primary" is used twice (nodes 0 and 1)`}},
		{"default names collide", Options{Primary: Node{DB: db}, Replicas: []Node{{DB: db}, {Name: "replica-0", DB: db}}},
			[]string{`node name "replica-0" is used twice`}},
		{"negative numbers", Options{Primary: Node{DB: db}, CheckInterval: -1, CheckTimeout: -2, MaxLagTime: -3, DownAfter: -6,
			TokenPolicy: TokenPolicy{Wait: -4, PollEvery: -5}},
			[]string{"CheckInterval -1ns is negative", "CheckTimeout -2ns is negative", "MaxLagTime -3ns is negative",
				"TokenPolicy.Wait -4ns is negative", "TokenPolicy.PollEvery -5ns is negative", "DownAfter -6 is negative"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.opts.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Equal(t, len(tc.want), strings.Count(err.Error(), "replica: "), err.Error())
			_, err = New(tc.opts)
			require.Error(t, err, "New validates")
		})
	}
}

func TestDefaults(t *testing.T) {
	o := Options{Primary: Node{DB: newPrimary("p")}, Replicas: []Node{{DB: newReplica("r", 1)}}}
	require.NoError(t, o.Validate())
	d := o.withDefaults()
	assert.Equal(t, time.Second, d.CheckInterval)
	assert.Equal(t, 2*time.Second, d.CheckTimeout, "a short interval still leaves time to connect")
	assert.NotNil(t, d.Picker)
	assert.NotNil(t, d.Probe)
	o.CheckInterval = 300 * time.Millisecond
	assert.Equal(t, 2*time.Second, o.withDefaults().CheckTimeout)
	o.CheckInterval = 5 * time.Second
	assert.Equal(t, 5*time.Second, o.withDefaults().CheckTimeout, "the timeout follows a long interval")
	names := []string{}
	for _, n := range o.nodes() {
		names = append(names, n.Name)
	}
	assert.Equal(t, []string{"primary", "replica-0"}, names)
}

func TestOpenChecksItsArguments(t *testing.T) {
	_, err := Open(t.Context(), "postgres://x", nil, Options{Primary: Node{DB: newPrimary("p")}})
	assert.ErrorContains(t, err, "leave Options.Primary and Options.Replicas empty")
	_, err = Open(t.Context(), "postgres://localhost/db", []string{"::not a dsn::"}, Options{})
	assert.ErrorContains(t, err, "replica: pool for node 1")
	_, err = Open(t.Context(), "postgres://localhost/db", nil, Options{CheckInterval: -1})
	assert.ErrorContains(t, err, "CheckInterval -1ns is negative")
}

func TestOpenOwnsItsPools(t *testing.T) {
	// Pools connect lazily: nothing listens on port 1, so checks fail, and Close must still
	// close the pools it made.
	r, err := Open(t.Context(), "postgres://u@127.0.0.1:1/db?connect_timeout=1", []string{"postgres://u@127.0.0.1:1/db"},
		Options{CheckInterval: time.Hour, CheckTimeout: 200 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, r.Ready(t.Context()))
	_, err = r.Writer(t.Context())
	require.ErrorIs(t, err, ErrNoPrimary)
	r.Close()
	for _, p := range r.owned {
		assert.ErrorContains(t, p.Ping(t.Context()), "closed pool")
	}
}
