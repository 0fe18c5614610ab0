package redisstream_test

import (
	"context"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/girder-go/girder/eventbus"
	"github.com/girder-go/girder/eventbus/redisstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidation(t *testing.T) {
	c, _ := newClient(t)
	tests := []struct {
		name string
		opts redisstream.Options
		want []string
	}{
		{"no client", redisstream.Options{}, []string{"Client is nil"}},
		{"negatives", redisstream.Options{Client: c, Block: -1, Count: -1, ClaimMinIdle: -1, ClaimInterval: -1, MaxLen: -1, Replicas: -1, ReplicaTimeout: -1},
			[]string{"Block", "Count", "ClaimMinIdle", "ClaimInterval", "MaxLen", "Replicas -1 is negative", "ReplicaTimeout -1ns is negative"}},
		{"replica timeout alone", redisstream.Options{Client: c, ReplicaTimeout: time.Second},
			[]string{"redisstream: Options.ReplicaTimeout 1s is set but Replicas is 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := redisstream.New(tt.opts)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	tr := newTransport(t, c, redisstream.Options{})
	_, err := redisstream.NewTopic[int](nil, "", nil)
	assert.ErrorContains(t, err, "nil Transport")
	assert.ErrorContains(t, err, "stream name is empty")

	topic := newOrders(t, tr)
	h := func(context.Context, orderProcessed) error { return nil }
	_, err = topic.Subscribe(context.Background(), "", "", nil, redisstream.SubscribeOptions[orderProcessed]{})
	for _, w := range []string{"group is empty", "consumer is empty", "handler is nil"} {
		assert.ErrorContains(t, err, w)
	}
	_, err = topic.Subscribe(context.Background(), "g", "c", h, redisstream.SubscribeOptions[orderProcessed]{
		MaxAttempts: -1, Backoff: eventbus.Backoff{Jitter: 2}, MaxDeliveries: -1,
	})
	assert.ErrorContains(t, err, "redisstream: SubscribeOptions.MaxAttempts -1 is negative")
	assert.ErrorContains(t, err, "redisstream: SubscribeOptions.MaxDeliveries -1 is negative")
	assert.ErrorContains(t, err, "redisstream: SubscribeOptions.Backoff.Jitter 2 is outside [0, 1]")
}

func TestJSONCodec(t *testing.T) {
	var c redisstream.JSON[orderProcessed]
	data, err := c.Marshal(orderProcessed{Seq: 7})
	require.NoError(t, err)
	assert.JSONEq(t, `{"seq":7}`, string(data))
	got, err := c.Unmarshal(data)
	require.NoError(t, err)
	assert.Equal(t, orderProcessed{Seq: 7}, got)
	_, err = c.Unmarshal([]byte("{"))
	assert.ErrorContains(t, err, "redisstream: json decode")
	_, err = redisstream.JSON[func()]{}.Marshal(func() {})
	assert.ErrorContains(t, err, "redisstream: json encode")
}

func FuzzJSONCodecRoundTrip(f *testing.F) {
	f.Add(0, "")
	f.Add(-42, "order ✓")
	f.Fuzz(func(t *testing.T, seq int, note string) {
		type event struct {
			Seq  int    `json:"seq"`
			Note string `json:"note"`
		}
		var c redisstream.JSON[event]
		data, err := c.Marshal(event{seq, note})
		require.NoError(t, err)
		got, err := c.Unmarshal(data)
		require.NoError(t, err)
		assert.Equal(t, seq, got.Seq)
		if utf8Valid(note) {
			assert.Equal(t, note, got.Note)
		}
	})
}

// utf8Valid: encoding/json replaces invalid UTF-8, so only valid strings survive unchanged.
func utf8Valid(s string) bool { return utf8.ValidString(s) }
