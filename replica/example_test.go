package replica_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/girder-go/girder/replica"
)

// server stands in for a PostgreSQL pool: every query answers with the server's name, and the
// probe below reads its role and log position from its fields. With real servers, pass
// *pgxpool.Pool values and leave Options.Probe nil.
type server struct {
	name     string
	replica  bool
	lsn      atomic.Uint64
	unusable atomic.Bool
}

func (s *server) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	s.lsn.Add(100) // a write moves the primary's log forward
	return pgconn.NewCommandTag("INSERT 0 1"), nil
}

func (s *server) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("not in this example")
}

func (s *server) QueryRow(context.Context, string, ...any) pgx.Row { return nameRow(s.name) }

func (s *server) Begin(context.Context) (pgx.Tx, error) {
	return nil, errors.New("not in this example")
}

func (s *server) BeginTx(context.Context, pgx.TxOptions) (pgx.Tx, error) {
	return nil, errors.New("not in this example")
}

type nameRow string

func (r nameRow) Scan(dest ...any) error {
	*dest[0].(*string) = string(r)
	return nil
}

func probe(_ context.Context, db replica.DB) (replica.Probe, error) {
	s := db.(*server)
	if s.unusable.Load() {
		return replica.Probe{}, errors.New("connection refused")
	}
	return replica.Probe{InRecovery: s.replica, LSN: s.lsn.Load()}, nil
}

func newServers() (*server, *server, *server) {
	p, r0, r1 := &server{name: "primary"}, &server{name: "replica-0", replica: true}, &server{name: "replica-1", replica: true}
	for _, s := range []*server{p, r0, r1} {
		s.lsn.Store(1000)
	}
	return p, r0, r1
}

func Example() {
	p, r0, r1 := newServers()
	r, err := replica.New(replica.Options{
		Primary:  replica.Node{DB: p},
		Replicas: []replica.Node{{DB: r0}, {DB: r1}},
		Probe:    probe, // omit with real pools: the default asks PostgreSQL
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	ctx := context.Background()
	if err := r.Ready(ctx); err != nil { // wait for the first round of checks
		fmt.Println(err)
		return
	}

	var who string
	r.WriteQueryRow(ctx, "INSERT INTO users … RETURNING …").Scan(&who)
	fmt.Println("write:", who)
	for range 3 {
		r.ReadQueryRow(ctx, "SELECT … FROM users").Scan(&who)
		fmt.Println("read:", who)
	}
	// Output:
	// write: primary
	// read: replica-0
	// read: replica-1
	// read: replica-0
}

func ExampleWithToken() {
	p, r0, r1 := newServers()
	r, _ := replica.New(replica.Options{
		Primary:       replica.Node{DB: p},
		Replicas:      []replica.Node{{DB: r0}, {DB: r1}},
		Probe:         probe,
		CheckInterval: time.Hour, // in this example only the token read learns that replica-1 caught up
	})
	defer r.Close()
	ctx := context.Background()
	r.Ready(ctx)

	_, tok, _ := r.ExecToken(ctx, "UPDATE users SET name = $1 WHERE id = $2", "Ada", 7)
	cookie := tok.String() // send it to the browser, get it back with the next request
	fmt.Println("token:", cookie)

	tok, _ = replica.ParseToken(cookie)
	var who string
	r.ReadQueryRow(replica.WithToken(ctx, tok), "SELECT name FROM users WHERE id = $1", 7).Scan(&who)
	fmt.Println("no replica has replayed it, so the read goes to the", who)

	r1.lsn.Store(1100) // replica-1 replays the write
	wait := replica.TokenPolicy{Wait: 100 * time.Millisecond}
	r.ReadQueryRow(replica.WithTokenPolicy(ctx, tok, wait), "SELECT name FROM users WHERE id = $1", 7).Scan(&who)
	fmt.Println("waiting for a replica finds", who)
	// Output:
	// token: 0/44c
	// no replica has replayed it, so the read goes to the primary
	// waiting for a replica finds replica-1
}

func ExampleNoPrimaryError() {
	p, r0, r1 := newServers()
	p.unusable.Store(true)
	r, _ := replica.New(replica.Options{Primary: replica.Node{DB: p}, Replicas: []replica.Node{{DB: r0}, {DB: r1}}, Probe: probe})
	defer r.Close()
	ctx := context.Background()
	r.Ready(ctx)

	_, err := r.Exec(ctx, "INSERT …")
	fmt.Println(errors.Is(err, replica.ErrNoPrimary))
	fmt.Println(err)
	var who string
	r.ReadQueryRow(ctx, "SELECT …").Scan(&who)
	fmt.Println("reads go on:", who)
	// Output:
	// true
	// replica: no primary: primary: connection refused; replica-0: in recovery; replica-1: in recovery
	// reads go on: replica-0
}

func ExampleParseToken() {
	tok, err := replica.ParseToken("16/B374D848")
	fmt.Println(tok, tok.LSN(), err)
	_, err = replica.ParseToken("yesterday")
	fmt.Println(err)
	// Output:
	// 16/b374d848 97500059720 <nil>
	// replica: malformed token: "yesterday"
}
