// Package replica routes PostgreSQL queries between a primary and its streaming replicas, over
// pgx v5 pools: writes and transactions go to the primary, reads to a replica that is up and not
// too far behind, and reads that must see the caller's own writes to a replica that has replayed
// them.
//
// # Routing
//
// A Router is built by New from one primary and any number of replicas, each a Node wrapping a
// *pgxpool.Pool (or anything else that satisfies DB); Open builds the pools from connection
// strings. The calls name where they go:
//
//   - Exec, WriteQuery, WriteQueryRow, Begin, BeginTx, ExecToken and Token go to the primary
//     (Writer).
//   - ReadQuery and ReadQueryRow go where Reader says: a fit replica, chosen by the Picker
//     (RoundRobin, Random, LeastLatency, LeastLag, or a PickerFunc of your own).
//
// A replica is fit when its last check succeeded, it is in recovery, and its lag is within
// Options.MaxLagBytes and Options.MaxLagTime. When none is fit, reads go to the primary, or fail
// with a *NoReplicaError if Options.NoFallback is set. When no node can take writes, calls fail
// with a *NoPrimaryError (errors.Is(err, ErrNoPrimary)) that gives each node's reason.
//
// # Checks
//
// New starts one goroutine that checks every node each Options.CheckInterval (1 s by default),
// all nodes at once, each bounded by Options.CheckTimeout. A check is one query (SQLProbe):
// pg_is_in_recovery(), the node's log position, and the replay delay. Roles are what the checks
// find, not what the configuration says: a replica that was promoted takes the writes, a primary
// that was demoted is not written to, and if several nodes claim to be primary the router writes
// to none of them (ErrSplitBrain). Lag in bytes is measured from the most advanced node; lag in
// time is the replica's own estimate (now() minus the commit time of the last transaction it
// replayed, 0 when it has replayed all it received). A node that goes down stops receiving reads
// at the next check; one that comes back receives them again at the check after it returns.
// Until the first round has finished (Ready), writes go to the configured primary and reads to
// the primary as well. Close stops the checks.
//
// # Read-your-writes
//
// A read with no token in its context may be stale, within the lag limits. A read that must see
// a write carries a Token: ExecToken returns one with the write's result, and Token returns the
// primary's current position after a transaction commits. WithToken puts it in a context; a Token
// travels between requests as text (String and ParseToken, or MarshalText), for a cookie or a
// header. A read carrying a token goes to a fit replica known to have replayed it; otherwise it
// follows its TokenPolicy (Options.TokenPolicy, or per read with WithTokenPolicy): wait up to
// Wait, asking the replicas for their replay position, and then read from the primary, or fail
// with ErrStale when NoFallback is set. The token is pg_current_wal_insert_lsn() read after the
// write returned, so it lies at or after the write's commit record even with
// synchronous_commit=off, and a replica that has replayed it sees the write.
//
// # Concurrency, zero values, cost
//
// A Router is safe for concurrent use. Its zero value is not usable: call New or Open. Routing
// reads an immutable table that each round of checks swaps in atomically: it takes no lock, reads
// no clock and allocates nothing (one atomic load on top of the pool's own call), except for a
// token read that has to wait. Every reason a node is unfit is an exported sentinel (ErrLagging,
// ErrInRecovery, …) found with errors.Is in a *NoPrimaryError or *NoReplicaError. Every call that blocks takes a context and returns its error (with its
// cause) when it ends. A Router does not close the pools it was given; those Open made are closed
// by Close.
//
// # Which to choose
//
// Use RoundRobin (the default) or Random to spread reads; LeastLatency to keep reads near the
// caller when replicas sit at different distances; LeastLag when freshness matters more than
// spread. Set MaxLagBytes or MaxLagTime to the staleness your pages can show. Carry tokens only
// for the reads that follow the caller's own writes (after a form is posted, say): a zero
// TokenPolicy sends those reads to the primary at once, a small Wait (tens of milliseconds,
// above your usual replay lag) keeps them on the replicas.
package replica
