package lb

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOptionsValidation(t *testing.T) {
	_, err := New(Options[string]{
		Policy:         Policy(42),
		Backends:       []Backend[string]{{Name: ""}, {Name: "a", Weight: -1}, {Name: "a"}},
		PanicThreshold: 2,
		Passive:        Passive{Window: -1, EjectFor: -1, MaxEjected: 1.5},
		Active:         Active[string]{Interval: -1, Timeout: -1, FailAfter: -1},
		SlowStart:      -1,
		DecayResponses: -1,
	})
	require.Error(t, err)
	for _, want := range []string{"unknown Policy", "Backends[0]: Name is empty", "Backends[1]: Weight -1", "Backends[2]: lb: duplicate",
		"PanicThreshold", "Passive.Window", "Passive.EjectFor", "Passive.MaxEjected", "Active.Interval", "Active.Timeout", "FailAfter", "SlowStart", "DecayResponses"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.ErrorIs(t, err, ErrDuplicate)
	for line := range strings.SplitSeq(err.Error(), "\n") {
		assert.True(t, strings.HasPrefix(line, "lb: "), line)
	}
}

func TestPolicyString(t *testing.T) {
	names := map[string]bool{}
	for _, p := range Policies() {
		names[p.String()] = true
	}
	assert.Len(t, names, int(numPolicies))
	assert.Equal(t, "Policy(99)", Policy(99).String())
	assert.Equal(t, "probe-failed", ReasonProbeFailed.String())
	assert.Equal(t, "Reason(9)", Reason(9).String())
}

func TestDefaultRingStandIn(t *testing.T) {
	b := newBalancer(t, Options[string]{Policy: ConsistentHash, Backends: backends("abcd"), PanicThreshold: -1})
	owner := pickKeyName(t, b, "session-7")
	eject(t, b, owner)
	standIn := pickKeyName(t, b, "session-7")
	assert.NotEqual(t, owner, standIn)
	assert.Equal(t, standIn, pickKeyName(t, b, "session-7"), "the stand-in is stable")
	m := b.snap.Load().byName[owner]
	b.mu.Lock()
	change, changed := b.setHealthLocked(m.st, 0, ReasonProbePassed, nil)
	b.mu.Unlock()
	b.emit(change, changed)
	assert.Equal(t, owner, pickKeyName(t, b, "session-7"), "the key goes home")
}

func pickKeyName(t testing.TB, b *Balancer[string], key string) string {
	t.Helper()
	l, err := b.PickKey(key)
	require.NoError(t, err)
	l.Done(nil, 0)
	return l.Name()
}

func TestNilFuncsAreIgnored(t *testing.T) {
	bs := backends("ab")
	bs[0].Check = AvailabilityFunc(nil)
	b := newBalancer(t, Options[string]{Backends: bs, Active: Active[string]{Probe: ProberFunc[string](nil)}})
	assert.Equal(t, "a b a b", sequence(t, b, 4))
	assert.Nil(t, b.set.probe)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want []string // substrings of the joined error; nil means valid
	}{
		{"zero Options", (&Options[string]{}).Validate(), nil},
		{"zero ProxyOptions of *url.URL", (&ProxyOptions[*url.URL]{}).Validate(), nil},
		{"ProxyOptions of string without URL", (&ProxyOptions[string]{Attempts: -1}).Validate(),
			[]string{"lb: ProxyOptions.URL is required", "lb: ProxyOptions.Attempts -1 is negative"}},
		{"Add of a bad backend", (&Balancer[string]{}).Add(Backend[string]{Weight: -1}),
			[]string{"lb: Add: Name is empty", "lb: Add: Weight -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == nil {
				assert.NoError(t, tt.err)
				return
			}
			require.Error(t, tt.err)
			for _, w := range tt.want {
				assert.Contains(t, tt.err.Error(), w)
			}
		})
	}
}
