package replica

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"
)

var (
	// ErrClosed is returned by every call on a closed Router.
	ErrClosed = errors.New("replica: router closed")
	// ErrNoPrimary matches a *NoPrimaryError: no node can take writes.
	ErrNoPrimary = errors.New("replica: no primary")
	// ErrNoReplica matches a *NoReplicaError: no replica is fit for a read and the router is
	// configured not to read from the primary instead.
	ErrNoReplica = errors.New("replica: no fit replica")
	// ErrStale is returned for a read carrying a token that no fit replica replayed within the
	// TokenPolicy's Wait, when the policy forbids reading from the primary.
	ErrStale = errors.New("replica: no replica has replayed the token")

	// ErrInRecovery is the reason a node in recovery (a replica) cannot take writes.
	ErrInRecovery = errors.New("replica: in recovery")
	// ErrSplitBrain is the reason given for each of several nodes that all report being a primary:
	// the router writes to none of them rather than guess.
	ErrSplitBrain = errors.New("replica: more than one node reports being a primary")
	// ErrLagging is the reason a replica is unfit: its lag exceeds MaxLagBytes or MaxLagTime.
	ErrLagging = errors.New("replica: lagging")
	// ErrNotChecked is the reason given for a replica before its first check has finished.
	ErrNotChecked = errors.New("replica: not checked yet")
)

// NodeError is why one node could not serve: the error of its last check, or one of the reason
// sentinels (ErrInRecovery, ErrSplitBrain, ErrLagging, ErrNotChecked).
type NodeError struct {
	Node string
	Err  error
}

func (e NodeError) Error() string { return "replica: " + e.reason() }

// reason is "node: why", without the package prefix the reason's own text may carry, so that a
// list of nodes reads once as one error.
func (e NodeError) reason() string {
	return e.Node + ": " + strings.TrimPrefix(e.Err.Error(), "replica: ")
}

// Unwrap returns the reason.
func (e NodeError) Unwrap() error { return e.Err }

// NoPrimaryError says why no node can take writes, node by node. It matches ErrNoPrimary, and
// errors.Is finds the reasons too (errors.Is(err, ErrInRecovery), a dial error, …).
type NoPrimaryError struct {
	Nodes []NodeError
}

func (e *NoPrimaryError) Error() string { return joinNodes("replica: no primary", e.Nodes) }

// Is reports whether target is ErrNoPrimary.
func (e *NoPrimaryError) Is(target error) bool { return target == ErrNoPrimary }

// Unwrap returns the reasons of every node.
func (e *NoPrimaryError) Unwrap() []error { return unwrapNodes(e.Nodes) }

// NoReplicaError says why no replica is fit for a read, replica by replica. It matches
// ErrNoReplica.
type NoReplicaError struct {
	Nodes []NodeError
}

func (e *NoReplicaError) Error() string { return joinNodes("replica: no fit replica", e.Nodes) }

// Is reports whether target is ErrNoReplica.
func (e *NoReplicaError) Is(target error) bool { return target == ErrNoReplica }

// Unwrap returns the reasons of every replica.
func (e *NoReplicaError) Unwrap() []error { return unwrapNodes(e.Nodes) }

func joinNodes(head string, nodes []NodeError) string {
	if len(nodes) == 0 {
		return head
	}
	var b strings.Builder
	b.WriteString(head)
	for i, n := range nodes {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(n.reason())
	}
	return b.String()
}

func unwrapNodes(nodes []NodeError) []error {
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		errs[i] = n
	}
	return errs
}

// errRow is the pgx.Row returned when a query could not be routed: Scan reports why.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

var _ pgx.Row = errRow{}

// ctxErr returns ctx's error with its cause kept findable, or nil.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && cause != err {
		return errors.Join(err, cause)
	}
	return err
}
