package main

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/girder-go/girder/replica"
)

// User is a user as the API shows it and as every level of the cache stores it (JSON in Redis).
type User struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// userInput is the body of POST /users and PUT /users/{id}.
type userInput struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

// validate reports every problem of in at once, as girder's constructors do.
func (in userInput) validate() error {
	var errs []error
	switch n := len(strings.TrimSpace(in.Name)); {
	case n == 0:
		errs = append(errs, errors.New("name is required"))
	case len(in.Name) > 100:
		errs = append(errs, errors.New("name is longer than 100 bytes"))
	}
	if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || len(in.Email) > 254 {
		errs = append(errs, fmt.Errorf("email %q is not a plain e-mail address", in.Email))
	}
	return errors.Join(errs...)
}

// now returns the time to stamp on a user. PostgreSQL keeps microseconds, so the value the cache
// stores on a write is cut to what a later load from the database returns: both copies are equal.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// errNoUser is what a userStore returns for an ID it does not hold.
var errNoUser = errors.New("user not found")

// userStore is the store of record, the small interface the service is written against. Two
// implementations: memStore in process (embedded mode) and pgStore, PostgreSQL behind girder's
// replica router, where Get may be served by a streaming replica and Save always goes to the
// primary.
type userStore interface {
	// NextID reserves a new user ID. IDs are allocated before the user is written, so that a
	// create goes through the cache's write-through path like an update does.
	NextID(ctx context.Context) (int64, error)
	// Get reads one user, or errNoUser. With a replica.Token in ctx (replica.WithToken) the read
	// sees every write up to that token.
	Get(ctx context.Context, id int64) (User, error)
	// Save inserts or replaces u and returns a token that later reads can carry to see it; the
	// zero token when every read sees every write anyway (one copy of the data).
	Save(ctx context.Context, u User) (replica.Token, error)
}

// errStoreDown is what memStore answers while a fault is injected (POST /debug/db/fail).
var errStoreDown = errors.New("memstore: injected failure")

// memStore is the in-memory userStore of embedded mode. Its one copy of the data needs no
// read-your-writes token. Fail and Heal inject an outage so that the breaker can be watched
// opening and closing without a database to kill.
type memStore struct {
	mu     sync.RWMutex
	users  map[int64]User
	lastID atomic.Int64
	down   atomic.Bool
}

func newMemStore() *memStore { return &memStore{users: map[int64]User{}} }

var _ userStore = (*memStore)(nil)

// NextID implements userStore.
func (m *memStore) NextID(ctx context.Context) (int64, error) {
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	return m.lastID.Add(1), nil
}

// Get implements userStore.
func (m *memStore) Get(ctx context.Context, id int64) (User, error) {
	if err := m.check(ctx); err != nil {
		return User{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	u, ok := m.users[id]
	if !ok {
		return User{}, errNoUser
	}
	return u, nil
}

// Save implements userStore.
func (m *memStore) Save(ctx context.Context, u User) (replica.Token, error) {
	if err := m.check(ctx); err != nil {
		return replica.Token{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.users[u.ID]; ok {
		u.CreatedAt = old.CreatedAt
	}
	m.users[u.ID] = u
	return replica.Token{}, nil
}

// check fails a call while a fault is injected, and honours ctx like a network call would.
func (m *memStore) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.down.Load() {
		return errStoreDown
	}
	return nil
}

// Fail makes every later call fail until Heal.
func (m *memStore) Fail() { m.down.Store(true) }

// Heal ends the injected outage.
func (m *memStore) Heal() { m.down.Store(false) }
