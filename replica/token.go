package replica

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Token is a position in the primary's write-ahead log (an LSN), taken right after a write. A read
// carrying a Token only goes to a replica that has replayed the log up to that position, so it sees
// the write. The zero Token asks for nothing.
//
// A Token is a plain value: it can be compared, kept across requests and sent to a browser as a
// cookie or header through String and ParseToken (or MarshalText and UnmarshalText).
type Token struct {
	lsn uint64
}

// TokenAt returns the Token for a log position given as a number (what Probe reports).
func TokenAt(lsn uint64) Token { return Token{lsn: lsn} }

// LSN returns the log position as a number.
func (t Token) LSN() uint64 { return t.lsn }

// IsZero reports whether t is the zero Token, which asks for nothing.
func (t Token) IsZero() bool { return t.lsn == 0 }

// Max returns the later of t and u: a read that must see two writes needs the later position.
func (t Token) Max(u Token) Token {
	if u.lsn > t.lsn {
		return u
	}
	return t
}

// String formats t the way PostgreSQL prints an LSN: two hexadecimal numbers, "16/B374D848".
func (t Token) String() string {
	return strconv.FormatUint(t.lsn>>32, 16) + "/" + strconv.FormatUint(t.lsn&0xFFFFFFFF, 16)
}

// MarshalText implements encoding.TextMarshaler with the format of String.
func (t Token) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with the rules of ParseToken.
func (t *Token) UnmarshalText(b []byte) error {
	v, err := ParseToken(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// ErrBadToken is returned (wrapped) by ParseToken for text that is not an LSN.
var ErrBadToken = errors.New("replica: malformed token")

// ParseToken parses the output of Token.String (any case of hexadecimal digits). The empty string
// is the zero Token, so a missing cookie or header needs no special case.
func ParseToken(s string) (Token, error) {
	if s == "" {
		return Token{}, nil
	}
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 || hasSign(hi) || hasSign(lo) {
		return Token{}, fmt.Errorf("%w: %q", ErrBadToken, s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return Token{}, fmt.Errorf("%w: %q", ErrBadToken, s)
	}
	return Token{lsn: h<<32 | l}, nil
}

// hasSign rejects "+1", which strconv would accept but PostgreSQL never prints.
func hasSign(s string) bool { return s[0] == '+' || s[0] == '-' }

// TokenPolicy says what a read carrying a Token does when no fit replica has replayed it yet.
// The zero value reads from the primary at once.
type TokenPolicy struct {
	// Wait is how long the read waits for a fit replica to replay the token, asking the replicas
	// for their replay position every PollEvery; 0 means do not wait.
	Wait time.Duration
	// PollEvery is the pause between two rounds of asking while waiting; 0 means Wait/10, at
	// least 1 ms and at most 50 ms.
	PollEvery time.Duration
	// NoFallback makes the read fail with ErrStale after Wait instead of going to the primary.
	NoFallback bool
}

func (p TokenPolicy) validate(prefix string) []error {
	var errs []error
	if p.Wait < 0 {
		errs = append(errs, fmt.Errorf("replica: %sWait %v is negative", prefix, p.Wait))
	}
	if p.PollEvery < 0 {
		errs = append(errs, fmt.Errorf("replica: %sPollEvery %v is negative", prefix, p.PollEvery))
	}
	return errs
}

func (p TokenPolicy) pollEvery() time.Duration {
	if p.PollEvery > 0 {
		return p.PollEvery
	}
	return min(max(p.Wait/10, time.Millisecond), 50*time.Millisecond)
}

type tokenKey struct{}

// tokenValue is what WithToken stores: the token and, when the caller chose one, a policy.
type tokenValue struct {
	tok       Token
	policy    TokenPolicy
	hasPolicy bool
}

// WithToken returns a context whose reads must see the write that tok was taken after, under the
// router's default TokenPolicy. If ctx already carries a token, the later of the two is kept.
func WithToken(ctx context.Context, tok Token) context.Context {
	v, _ := ctx.Value(tokenKey{}).(*tokenValue)
	nv := &tokenValue{tok: tok}
	if v != nil {
		nv.tok = v.tok.Max(tok)
		nv.policy, nv.hasPolicy = v.policy, v.hasPolicy
	}
	return context.WithValue(ctx, tokenKey{}, nv)
}

// WithTokenPolicy is WithToken with the caller's own TokenPolicy for the reads made with the
// returned context. A policy with a negative duration is treated as its zero value.
func WithTokenPolicy(ctx context.Context, tok Token, p TokenPolicy) context.Context {
	if p.Wait < 0 || p.PollEvery < 0 {
		p = TokenPolicy{NoFallback: p.NoFallback}
	}
	v, _ := ctx.Value(tokenKey{}).(*tokenValue)
	nv := &tokenValue{tok: tok, policy: p, hasPolicy: true}
	if v != nil {
		nv.tok = v.tok.Max(tok)
	}
	return context.WithValue(ctx, tokenKey{}, nv)
}

// TokenFrom returns the token ctx carries, or the zero Token.
func TokenFrom(ctx context.Context) Token {
	if v, _ := ctx.Value(tokenKey{}).(*tokenValue); v != nil {
		return v.tok
	}
	return Token{}
}

func tokenFrom(ctx context.Context) *tokenValue {
	v, _ := ctx.Value(tokenKey{}).(*tokenValue)
	return v
}
