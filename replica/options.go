package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is what the router needs of a node: the query methods of *pgxpool.Pool, which satisfies it.
// A *pgx.Conn does too, and so does any fake a test or demonstration provides.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

var (
	_ DB = (*pgxpool.Pool)(nil)
	_ DB = (*pgx.Conn)(nil)
)

// Node is one PostgreSQL server behind the router.
type Node struct {
	// Name identifies the node in errors, statuses and hooks; empty means "primary" for the
	// configured primary and "replica-0", "replica-1", … for the replicas.
	Name string
	// DB is the node's pool. The router does not close it (Open's pools excepted).
	DB DB
}

// Options configures a Router. Only Primary is required; every zero field means the default
// written beside it.
type Options struct {
	// Primary is the node expected to take writes. Roles are checked, not trusted: if it turns out
	// to be in recovery it is not written to, and a replica that reports it is no longer in
	// recovery (promoted) takes the writes instead.
	Primary Node
	// Replicas are the nodes expected to serve reads; none means every read goes to the primary.
	Replicas []Node

	// CheckInterval is the time between two rounds of checks; 0 means 1 s.
	CheckInterval time.Duration
	// CheckTimeout bounds each node's check; 0 means CheckInterval or 2 s, whichever is longer,
	// so that a first check that must open a connection is not cut short by a short interval.
	// A node whose check times out is down until a later check succeeds.
	CheckTimeout time.Duration
	// DownAfter is how many checks in a row must fail before a node that was up counts as down;
	// 0 means 1. Raise it so that one lost check (a pause, a dropped packet) does not stop the
	// writes; the price is that a dead node keeps its traffic DownAfter intervals longer.
	DownAfter int

	// MaxLagBytes excludes from reads a replica that has replayed more than this many bytes less
	// of the log than the most advanced node; 0 means no limit.
	MaxLagBytes uint64
	// MaxLagTime excludes from reads a replica whose replay is further behind than this in time;
	// 0 means no limit.
	MaxLagTime time.Duration

	// Picker chooses among the fit replicas; nil means RoundRobin().
	Picker Picker
	// NoFallback makes reads without a token fail with a *NoReplicaError when no replica is fit,
	// instead of going to the primary.
	NoFallback bool
	// TokenPolicy is what a read carrying a token does when no fit replica has replayed it;
	// WithTokenPolicy overrides it per read. The zero value reads from the primary at once.
	TokenPolicy TokenPolicy

	// Probe asks one node for its role and log position; nil means SQLProbe. Replace it to put
	// the router in front of something that is not PostgreSQL, such as a fake in tests.
	Probe ProbeFunc

	// Hooks observe checks and routing; nil fields are not called.
	Hooks Hooks
	// Logger receives node state changes; nil means silent.
	Logger *slog.Logger
}

// Hooks are optional callbacks. They run synchronously: OnNodeChange on the checking goroutine,
// OnRoute on the caller's goroutine for every routed call, so keep them short.
type Hooks struct {
	// OnNodeChange is called when a check changes a node's role, reachability or fitness.
	OnNodeChange func(NodeChangeInfo)
	// OnRoute is called with each routing decision before the query is sent, with the query's ctx.
	OnRoute func(ctx context.Context, info RouteInfo)
}

// NodeChangeInfo describes a change of one node, for Hooks.OnNodeChange.
type NodeChangeInfo struct {
	Old, New NodeStatus
}

// RouteInfo is one routing decision, for Hooks.OnRoute.
type RouteInfo struct {
	Node   string // the chosen node's name
	Reason Reason // why it was chosen
}

// Reason says why a query went where it went.
type Reason uint8

const (
	// ReasonWrite: a write, transaction or token request, sent to the primary.
	ReasonWrite Reason = iota
	// ReasonReplica: a read without a token, sent to a fit replica.
	ReasonReplica
	// ReasonFallback: a read without a token, sent to the primary because no replica is fit.
	ReasonFallback
	// ReasonTokenReplica: a read with a token, sent to a replica known to have replayed it.
	ReasonTokenReplica
	// ReasonTokenWaited: a read with a token, sent to a replica after waiting for it to replay it.
	ReasonTokenWaited
	// ReasonTokenFallback: a read with a token, sent to the primary because no fit replica had
	// replayed it (within the policy's Wait).
	ReasonTokenFallback
)

var reasonNames = [...]string{"write", "replica", "fallback", "token-replica", "token-waited", "token-fallback"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

const (
	defaultCheckInterval   = time.Second
	minDefaultCheckTimeout = 2 * time.Second
)

// Validate reports every problem with o, or nil.
func (o *Options) Validate() error {
	var errs []error
	if o.Primary.DB == nil {
		errs = append(errs, errors.New("replica: Primary.DB is nil"))
	}
	names := map[string]int{}
	for i, n := range o.nodes() {
		if i > 0 && n.DB == nil {
			errs = append(errs, fmt.Errorf("replica: Replicas[%d].DB is nil", i-1))
		}
		if j, dup := names[n.Name]; dup {
			errs = append(errs, fmt.Errorf("replica: node name %q is used twice (nodes %d and %d)", n.Name, j, i))
		}
		names[n.Name] = i
	}
	if o.CheckInterval < 0 {
		errs = append(errs, fmt.Errorf("replica: CheckInterval %v is negative", o.CheckInterval))
	}
	if o.CheckTimeout < 0 {
		errs = append(errs, fmt.Errorf("replica: CheckTimeout %v is negative", o.CheckTimeout))
	}
	if o.DownAfter < 0 {
		errs = append(errs, fmt.Errorf("replica: DownAfter %d is negative", o.DownAfter))
	}
	if o.MaxLagTime < 0 {
		errs = append(errs, fmt.Errorf("replica: MaxLagTime %v is negative", o.MaxLagTime))
	}
	errs = append(errs, o.TokenPolicy.validate("TokenPolicy.")...)
	return errors.Join(errs...)
}

// nodes returns the primary then the replicas, with default names filled in.
func (o *Options) nodes() []Node {
	out := make([]Node, 0, 1+len(o.Replicas))
	p := o.Primary
	if p.Name == "" {
		p.Name = "primary"
	}
	out = append(out, p)
	for i, r := range o.Replicas {
		if r.Name == "" {
			r.Name = fmt.Sprintf("replica-%d", i)
		}
		out = append(out, r)
	}
	return out
}

func (o Options) withDefaults() Options {
	if o.CheckInterval == 0 {
		o.CheckInterval = defaultCheckInterval
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = max(o.CheckInterval, minDefaultCheckTimeout)
	}
	if o.DownAfter == 0 {
		o.DownAfter = 1
	}
	if o.Picker == nil {
		o.Picker = RoundRobin()
	}
	if o.Probe == nil {
		o.Probe = SQLProbe
	}
	return o
}
