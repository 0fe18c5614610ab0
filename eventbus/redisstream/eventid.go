package redisstream

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/redis/go-redis/v9"
)

// idField is the stream entry field holding the event's ID.
const idField = "id"

// NewEventID returns a fresh event ID: 128 random bits as 32 hexadecimal digits, from the
// runtime's per-thread generator (no lock, no system call; one allocation for the string).
func NewEventID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

type eventIDKey struct{}

// WithEventID returns ctx carrying id as the ID of the event Publish is given with it. Publishing
// again with the same ID after a Publish whose outcome is unknown (ErrMaybePublished) lets
// subscribers recognise the second copy.
func WithEventID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, eventIDKey{}, id)
}

// EventID returns the event ID ctx carries: in a handler, the ID of the event being handled (the
// same for every copy of one event, redeliveries and re-publications with WithEventID included),
// which is what a subscriber records to drop duplicates. "" when ctx carries none.
func EventID(ctx context.Context) string {
	id, _ := ctx.Value(eventIDKey{}).(string)
	return id
}

// ErrMaybePublished is matched by the *PublishError of a Publish whose outcome is unknown: the
// request may have reached Redis and the entry may have been written although no reply came.
var ErrMaybePublished = errors.New("redisstream: event may have been published")

// PublishError is the error of a Publish that Redis did not confirm.
type PublishError struct {
	Stream string
	ID     string // the event's ID; publish again with WithEventID(ctx, ID) to retry safely
	// Ambiguous says the outcome is unknown (errors.Is(err, ErrMaybePublished)): a network error
	// or a timeout after the request may have been written. Otherwise the event was not written.
	Ambiguous bool
	Err       error
}

func (e *PublishError) Error() string {
	if e.Ambiguous {
		return fmt.Sprintf("redisstream: publish %s to %s: outcome unknown, the event may have been written: %v", e.ID, e.Stream, e.Err)
	}
	return fmt.Sprintf("redisstream: publish %s to %s: %v", e.ID, e.Stream, e.Err)
}

// Unwrap returns the underlying error (a go-redis or ctx error).
func (e *PublishError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrMaybePublished) true when the outcome is unknown.
func (e *PublishError) Is(target error) bool { return target == ErrMaybePublished && e.Ambiguous }

// ambiguous reports whether a failed XADD may still have been written. Only two failures
// count as proof that it was not: the client was closed before sending, or Redis answered with
// an error reply that go-redis does not retry (after a retried one, an earlier attempt whose
// reply was lost may have written the entry).
func ambiguous(err error) bool {
	if errors.Is(err, redis.ErrClosed) {
		return false
	}
	var reply redis.Error
	if errors.As(err, &reply) {
		msg := reply.Error()
		for _, retried := range []string{"LOADING ", "READONLY ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ", "NOREPLICAS ", "ERR max number of clients reached"} {
			if strings.HasPrefix(msg, retried) {
				return true
			}
		}
		return false
	}
	return true
}
