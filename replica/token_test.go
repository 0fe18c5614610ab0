package replica

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTokenText(t *testing.T) {
	tests := []struct {
		lsn  uint64
		text string
	}{
		{0, "0/0"},
		{1, "0/1"},
		{0x16B374D848, "16/b374d848"},
		{0xFFFFFFFF, "0/ffffffff"},
		{1 << 32, "1/0"},
		{^uint64(0), "ffffffff/ffffffff"},
	}
	for _, tc := range tests {
		tok := TokenAt(tc.lsn)
		assert.Equal(t, tc.text, tok.String())
		got, err := ParseToken(tc.text)
		require.NoError(t, err, tc.text)
		assert.Equal(t, tok, got)
		assert.Equal(t, tc.lsn, got.LSN())
	}
	upper, err := ParseToken("16/B374D848")
	require.NoError(t, err)
	assert.Equal(t, TokenAt(0x16B374D848), upper, "PostgreSQL prints upper case")
}

func TestParseTokenRejects(t *testing.T) {
	for _, s := range []string{"/", "0/", "/0", "12", "x/1", "1/x", "1/2/3", "+1/0", "1/-0", "100000000/0", "0/100000000", " 1/0", "1/0 "} {
		_, err := ParseToken(s)
		assert.ErrorIs(t, err, ErrBadToken, "%q", s)
	}
	tok, err := ParseToken("")
	require.NoError(t, err)
	assert.True(t, tok.IsZero(), "a missing cookie is the zero token")
}

func TestTokenMarshalsAsText(t *testing.T) {
	type cookie struct {
		Tok Token `json:"tok"`
	}
	b, err := json.Marshal(cookie{TokenAt(0x10000002A)})
	require.NoError(t, err)
	assert.JSONEq(t, `{"tok":"1/2a"}`, string(b))
	var c cookie
	require.NoError(t, json.Unmarshal(b, &c))
	assert.Equal(t, TokenAt(0x10000002A), c.Tok)
	assert.ErrorIs(t, json.Unmarshal([]byte(`{"tok":"nope"}`), &c), ErrBadToken)
}

func TestTokenMax(t *testing.T) {
	a, b := TokenAt(5), TokenAt(9)
	assert.Equal(t, b, a.Max(b))
	assert.Equal(t, b, b.Max(a))
	assert.Equal(t, a, a.Max(Token{}))
}

func TestTokensInContext(t *testing.T) {
	ctx := context.Background()
	assert.True(t, TokenFrom(ctx).IsZero())
	ctx = WithToken(ctx, TokenAt(10))
	assert.Equal(t, TokenAt(10), TokenFrom(ctx))
	ctx = WithToken(ctx, TokenAt(7))
	assert.Equal(t, TokenAt(10), TokenFrom(ctx), "the later of two writes is kept")

	p := TokenPolicy{Wait: time.Second, NoFallback: true}
	ctx = WithTokenPolicy(ctx, TokenAt(12), p)
	assert.Equal(t, TokenAt(12), TokenFrom(ctx))
	assert.Equal(t, p, tokenFrom(ctx).policy)
	ctx = WithToken(ctx, TokenAt(3))
	assert.Equal(t, TokenAt(12), TokenFrom(ctx))
	assert.True(t, tokenFrom(ctx).hasPolicy, "a later WithToken keeps the caller's policy")

	bad := WithTokenPolicy(context.Background(), TokenAt(1), TokenPolicy{Wait: -time.Second, NoFallback: true})
	assert.Equal(t, TokenPolicy{NoFallback: true}, tokenFrom(bad).policy)
}

func TestPollEvery(t *testing.T) {
	tests := []struct {
		p    TokenPolicy
		want time.Duration
	}{
		{TokenPolicy{}, time.Millisecond},
		{TokenPolicy{Wait: 5 * time.Millisecond}, time.Millisecond},
		{TokenPolicy{Wait: 200 * time.Millisecond}, 20 * time.Millisecond},
		{TokenPolicy{Wait: time.Minute}, 50 * time.Millisecond},
		{TokenPolicy{Wait: time.Minute, PollEvery: time.Second}, time.Second},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, tc.p.pollEvery(), "%+v", tc.p)
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"", "0/0", "16/B374D848", "ffffffff/ffffffff", "1/", "+1/0", "0x1/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			require.ErrorIs(t, err, ErrBadToken)
			return
		}
		again, err := ParseToken(tok.String())
		require.NoError(t, err, "String's output parses")
		require.Equal(t, tok, again)
	})
}
