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

// TestKeySlot checks keySlot against Redis Cluster's specification: CRC16 of "123456789" is
// 0x31C3, and a hash tag puts keys in the slot of the tag.
func TestKeySlot(t *testing.T) {
	require.Equal(t, 0x31C3%16384, keySlot("123456789"))
	require.Equal(t, 12182, keySlot("foo")) // CLUSTER KEYSLOT foo
	require.Equal(t, keySlot("user1000"), keySlot("{user1000}.following"))
	require.Equal(t, keySlot("{user1000}.following"), keySlot("{user1000}.followers"))
	require.Equal(t, keySlot("foo{}{bar}"), keySlot("foo{}{bar}"), "an empty tag hashes the whole key")
	require.NotEqual(t, keySlot("bar"), keySlot("foo{}{bar}"))
	require.Equal(t, keySlot("zap"), keySlot("foo{zap}bar{baz}"), "the first tag counts")
}

func TestParseCluster(t *testing.T) {
	addrs, err := parseCluster([]string{"10.0.0.1:7000", " redis-c1:6379"})
	require.NoError(t, err)
	require.Equal(t, []string{"10.0.0.1:7000", "redis-c1:6379"}, addrs)
	_, err = parseCluster([]string{"nowhere", ""})
	require.ErrorContains(t, err, `-cluster "nowhere": want host:port`)
	require.ErrorContains(t, err, `-cluster "": want host:port`)

	cfg := config{cluster: []string{"h:1"}, redis: []string{"a=h:2"}}.withDefaults()
	require.ErrorContains(t, cfg.validate(), "-redis and -cluster exclude each other")
	cfg = config{cluster: []string{"h:1"}}.withDefaults()
	require.NoError(t, cfg.validate())
	require.Zero(t, cfg.nodes, "no embedded nodes in cluster mode")
}
