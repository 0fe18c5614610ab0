package rediscache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/girder-go/girder/cache"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// roundTrip publishes keys from one Broadcast and returns what another one's Listen delivers.
func roundTrip[K comparable](t *testing.T, client redis.UniversalClient, codec cache.Codec[K], keys []K) []K {
	t.Helper()
	opts := BroadcastOptions[K]{Client: client, Channel: "invalidate:keys", KeyCodec: codec}
	listener, err := NewBroadcast(opts)
	require.NoError(t, err)
	sender, err := NewBroadcast(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan []K, 1)
	subscribed := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- listener.Listen(ctx, func(k []K) { got <- k }, func() { subscribed <- struct{}{} })
	}()
	select {
	case <-subscribed:
	case <-time.After(5 * time.Second):
		t.Fatal("never subscribed")
	}
	require.NoError(t, sender.Publish(ctx, keys))
	var res []K
	select {
	case res = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("nothing delivered")
	}
	cancel()
	<-done
	return res
}

type tenantKey struct {
	Tenant string
	ID     int64
	Shard  [2]uint8
}

// tenantCodec is a key codec a user could write for a struct key.
type tenantCodec struct{}

func (tenantCodec) Marshal(k tenantKey) ([]byte, error) {
	b := binary.AppendUvarint(nil, uint64(len(k.Tenant)))
	b = append(b, k.Tenant...)
	b = binary.AppendVarint(b, k.ID)
	return append(b, k.Shard[:]...), nil
}

func (tenantCodec) Unmarshal(b []byte) (tenantKey, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return tenantKey{}, errors.New("short")
	}
	k := tenantKey{Tenant: string(b[w : w+int(n)])}
	b = b[w+int(n):]
	id, w := binary.Varint(b)
	if w <= 0 || len(b)-w != 2 {
		return tenantKey{}, errors.New("short")
	}
	k.ID = id
	copy(k.Shard[:], b[w:])
	return k, nil
}

// TestBroadcastKeysRoundTrip is symptom 4 of issue 18: keys of every comparable type reach the other
// instances exactly as published, bytes that are not UTF-8 included. Guarantee C4.
func TestBroadcastKeysRoundTrip(t *testing.T) {
	_, client := newMiniredis(t)
	t.Run("strings", func(t *testing.T) {
		keys := []string{"plain", "", "\xff\xfe", "caf\xe9", "\x00nul", "é", string([]byte{0xc3, 0x28}), "\xed\xa0\x80"}
		assert.Equal(t, keys, roundTrip[string](t, client, nil, keys))
	})
	t.Run("named string of bytes", func(t *testing.T) {
		type raw string
		keys := []raw{raw([]byte{0, 1, 2, 0xff}), raw("x")}
		assert.Equal(t, keys, roundTrip[raw](t, client, nil, keys))
	})
	t.Run("byte arrays", func(t *testing.T) {
		keys := [][16]byte{{0xff, 0xfe}, {}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}
		assert.Equal(t, keys, roundTrip[[16]byte](t, client, nil, keys))
	})
	t.Run("ints", func(t *testing.T) {
		keys := []int64{0, -1, 1 << 62, -1 << 63}
		assert.Equal(t, keys, roundTrip[int64](t, client, nil, keys))
	})
	t.Run("uints", func(t *testing.T) {
		keys := []uint64{0, 1<<64 - 1}
		assert.Equal(t, keys, roundTrip[uint64](t, client, nil, keys))
	})
	t.Run("struct keys, built-in codec", func(t *testing.T) {
		keys := []tenantKey{{Tenant: "\xffacme", ID: -7, Shard: [2]uint8{1, 255}}, {}}
		assert.Equal(t, keys, roundTrip[tenantKey](t, client, nil, keys))
	})
	t.Run("struct keys, key codec", func(t *testing.T) {
		keys := []tenantKey{{Tenant: "\xffacme", ID: -7, Shard: [2]uint8{1, 255}}, {}}
		assert.Equal(t, keys, roundTrip[tenantKey](t, client, tenantCodec{}, keys))
	})
}

func TestBroadcastKeyTypesWithoutMeaningElsewhereNeedACodec(t *testing.T) {
	_, client := newMiniredis(t)
	//lint:ignore U1000 the unexported field is what the codec must refuse
	type hidden struct{ id int }
	_, err := NewBroadcast(BroadcastOptions[*int]{Client: client, Channel: "c"})
	assert.ErrorContains(t, err, "needs a KeyCodec")
	_, err = NewBroadcast(BroadcastOptions[hidden]{Client: client, Channel: "c"})
	assert.ErrorContains(t, err, "not exported")
	_, err = NewBroadcast(BroadcastOptions[any]{Client: client, Channel: "c"})
	assert.ErrorContains(t, err, "needs a KeyCodec")
}

func TestDecodeMessageRejectsWhatItCannotRead(t *testing.T) {
	good, err := encodeMessage("me", []string{"a", "b"}, keyCodec[string]{})
	require.NoError(t, err)
	tests := []struct {
		name string
		msg  []byte
	}{
		{"empty", nil},
		{"version 2", append([]byte{2}, good[1:]...)},
		{"unknown kind", append([]byte{1, 9}, good[2:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(append([]byte{}, good...), 0)},
		{"huge count", []byte{1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"huge length", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}},
		{"json of the old format", []byte(`{"from":"x","keys":["a"]}`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeMessage(tt.msg, keyCodec[string]{})
			assert.ErrorIs(t, err, errBadMessage)
		})
	}
}

// FuzzBroadcastMessage: decoding never panics, and what decodes re-encodes to the same bytes;
// encoding any keys and decoding them is the identity.
func FuzzBroadcastMessage(f *testing.F) {
	for _, keys := range [][]string{{"a"}, {"\xff", ""}, {}} {
		msg, err := encodeMessage("id", keys, keyCodec[string]{})
		require.NoError(f, err)
		f.Add(msg, "id", "\xff\x00", int64(-3))
	}
	f.Fuzz(func(t *testing.T, msg []byte, from, key string, n int64) {
		if id, keys, err := decodeMessage(msg, keyCodec[string]{}); err == nil {
			again, err := encodeMessage(id, keys, keyCodec[string]{})
			require.NoError(t, err)
			assert.Equal(t, msg, again)
		}
		_, _, _ = decodeMessage(msg, keyCodec[tenantKey]{})
		_, _, _ = decodeMessage(msg, keyCodec[int8]{})

		keys := []string{key, from + key, fmt.Sprint(n)}
		enc, err := encodeMessage(from, keys, keyCodec[string]{})
		require.NoError(t, err)
		gotFrom, gotKeys, err := decodeMessage(enc, keyCodec[string]{})
		require.NoError(t, err)
		assert.Equal(t, from, gotFrom)
		assert.Equal(t, keys, gotKeys)

		tk := []tenantKey{{Tenant: key, ID: n, Shard: [2]uint8{uint8(n), uint8(n >> 8)}}}
		enc, err = encodeMessage(from, tk, keyCodec[tenantKey]{})
		require.NoError(t, err)
		_, gotTK, err := decodeMessage(enc, keyCodec[tenantKey]{})
		require.NoError(t, err)
		assert.Equal(t, tk, gotTK)
	})
}
