package breaker

import (
	"errors"
	"fmt"
	"time"
)

// ErrOpen is matched (with errors.Is) by every rejection: the breaker is open, or half-open with
// all probe slots taken. errors.As with *OpenError tells which, and when to retry.
var ErrOpen = errors.New("breaker: circuit open")

// errPanicked is recorded as the outcome of a call that panicked inside Do.
var errPanicked = errors.New("breaker: call panicked")

var (
	// ErrNilBreaker is returned by Do and Allow on a nil *Breaker.
	ErrNilBreaker = errors.New("breaker: nil *Breaker")
	// ErrNilFunc is returned by Do given a nil function.
	ErrNilFunc = errors.New("breaker: nil function")
)

// OpenError is the error a rejected call gets. It matches ErrOpen.
type OpenError struct {
	Name  string // Options.Name of the breaker
	State State  // Open, or HalfOpen when all probe slots were taken
	// RetryAt is when the breaker will let probes through again. It is zero when that is not
	// known: half-open with all probes in flight, or forced open until Reset.
	RetryAt time.Time
}

func (e *OpenError) Error() string {
	name := ""
	if e.Name != "" {
		name = " " + e.Name
	}
	switch {
	case e.State == HalfOpen:
		return fmt.Sprintf("breaker%s: circuit half-open, all probe calls in flight", name)
	case e.RetryAt.IsZero():
		return fmt.Sprintf("breaker%s: circuit forced open", name)
	default:
		return fmt.Sprintf("breaker%s: circuit open until %s", name, e.RetryAt.Format(time.RFC3339Nano))
	}
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// State is the state of a Breaker.
type State int32

// The states of a Breaker.
const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	default:
		return fmt.Sprintf("State(%d)", int32(s))
	}
}
