package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseNodes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		list  []string
		names []string
		addrs []string
		err   string
	}{
		{name: "addresses", list: []string{"10.0.0.1:6379", " 10.0.0.2:6379"},
			names: []string{"10.0.0.1:6379", "10.0.0.2:6379"}, addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379"}},
		{name: "named", list: []string{"a=10.0.0.1:6379", "b=10.0.0.1:6380"},
			names: []string{"a", "b"}, addrs: []string{"10.0.0.1:6379", "10.0.0.1:6380"}},
		{name: "no port", list: []string{"localhost"}, err: `"localhost": want host:port`},
		{name: "empty name", list: []string{"=h:1"}, err: "empty node name"},
		{name: "duplicate", list: []string{"a=h:1", "a=h:2"}, err: `node "a" given twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			specs, err := parseNodes(tc.list)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			var names, addrs []string
			for _, s := range specs {
				names = append(names, s.name)
				addrs = append(addrs, s.opts.Addr)
			}
			require.Equal(t, tc.names, names)
			require.Equal(t, tc.addrs, addrs)
		})
	}
}

// TestConfigValidate: every problem is reported at once, and run refuses to start.
func TestConfigValidate(t *testing.T) {
	cfg := config{nodes: -1, replicas: -2, ttl: -time.Second, redis: []string{"nowhere"}}.withDefaults()
	err := cfg.validate()
	for _, want := range []string{"-nodes -1", "-replicas -2", "-ttl -1s", `"nowhere"`} {
		require.ErrorContains(t, err, want)
	}
	require.Error(t, run(t.Context(), cfg, nil))
	require.NoError(t, config{}.withDefaults().validate())
}

func TestValidID(t *testing.T) {
	for id, ok := range map[string]bool{
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ": true,
		"ABCDEFGHIJKLMNOPQRSTUVW234": true,
		"ABCDEFGHIJKLMNOPQRSTUVWXY":  false, // 25 characters
		"abcdefghijklmnopqrstuvwxyz": false,
		"ABCDEFGHIJKLMNOPQRSTUVWXY1": false,
		"session:ABCDEFGHIJKLMNOPQR": false,
		"":                           false,
	} {
		require.Equal(t, ok, validID(id), id)
	}
}
