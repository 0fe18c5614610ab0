package cache

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestJSONCodec(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    user
		wantErr bool
	}{
		{"object", `{"id":1,"name":"ada"}`, user{ID: 1, Name: "ada"}, false},
		{"unknown fields ignored", `{"id":2,"extra":true}`, user{ID: 2}, false},
		{"garbage", `{"id":`, user{}, true},
		{"wrong type", `{"id":"one"}`, user{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := JSON[user]{}.Unmarshal([]byte(tt.data))
			if tt.wantErr {
				assert.ErrorContains(t, err, "cache: json decode")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := JSON[chan int]{}.Marshal(make(chan int))
	assert.ErrorContains(t, err, "cache: json encode")
}

func FuzzJSONCodecRoundTrip(f *testing.F) {
	f.Add(0, "")
	f.Add(-1, "ü\x00\"")
	f.Fuzz(func(t *testing.T, id int, name string) {
		in := user{ID: id, Name: name}
		data, err := JSON[user]{}.Marshal(in)
		require.NoError(t, err)
		out, err := JSON[user]{}.Unmarshal(data)
		require.NoError(t, err)
		if in.Name == out.Name {
			assert.Equal(t, in, out)
		} else {
			// encoding/json replaces invalid UTF-8 with U+FFFD; the id survives regardless.
			assert.Equal(t, in.ID, out.ID)
		}
	})
}

type user struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}
