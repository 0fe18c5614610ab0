package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// sessionStore is what the HTTP layer asks of a store: the ring over independent nodes (Store) or
// a Redis Cluster (clusterStore).
type sessionStore interface {
	// Create starts a session for user and returns it with the nodes that acknowledged it.
	Create(ctx context.Context, user string) (Session, []string, error)
	// Get returns the session with this ID and the node that answered.
	Get(ctx context.Context, id string) (Session, string, error)
	// Delete ends the session with this ID and reports whether it existed.
	Delete(ctx context.Context, id string) (bool, error)
	// Replicas names the nodes that hold the session now, the one that serves it first.
	Replicas(ctx context.Context, id string) ([]string, error)
}

var (
	_ sessionStore = (*Store)(nil)
	_ sessionStore = (*clusterStore)(nil)
)

// parseCluster reads the -cluster list: "host:port" seed nodes of one Redis Cluster. The client
// asks them for the slot map and finds every other node from it, so one reachable seed is
// enough; more survive a seed being down at start.
func parseCluster(list []string) ([]string, error) {
	var addrs []string
	var errs []error
	for _, item := range list {
		addr := strings.TrimSpace(item)
		if _, _, err := net.SplitHostPort(addr); err != nil || addr == "" {
			errs = append(errs, fmt.Errorf("sessions: -cluster %q: want host:port", item))
			continue
		}
		addrs = append(addrs, addr)
	}
	return addrs, errors.Join(errs...)
}

// clusterReload is how often the cluster client reloads the slot map when nothing told it to:
// go-redis reloads on MOVED and ASK, and otherwise every ClusterStateReloadInterval (60 s by
// default), so after a master dies without a redirect its slots would go to the dead address for
// up to a minute.
const clusterReload = time.Second

// newClusterClient makes the go-redis cluster client: opts (the test's, dialling containers)
// or the seed addresses, with cfg's deadline on every call unless opts sets one.
func newClusterClient(cfg config) *redis.ClusterClient {
	var opts redis.ClusterOptions
	if cfg.clusterOpts != nil {
		opts = *cfg.clusterOpts
	} else {
		opts.Addrs, _ = parseCluster(cfg.cluster) // validated
	}
	opts.DialTimeout = cmp.Or(opts.DialTimeout, cfg.opTimeout)
	opts.ReadTimeout = cmp.Or(opts.ReadTimeout, cfg.opTimeout)
	opts.WriteTimeout = cmp.Or(opts.WriteTimeout, cfg.opTimeout)
	opts.ContextTimeoutEnabled = true
	opts.ClusterStateReloadInterval = cmp.Or(opts.ClusterStateReloadInterval, clusterReload)
	return redis.NewClusterClient(&opts)
}

// clusterStore keeps each session once, under "session:<ID>", on a Redis Cluster. The cluster
// places it (the key's hash slot, CRC16 mod 16384, is served by one master), copies it to that
// master's replicas, and promotes a replica when the master fails; the client follows the slot
// map (MOVED, ASK, and a reload every clusterReload). Nothing here replicates, repairs or
// watches nodes: that is the server's job in this mode.
//
// Every operation is on one key, so no hash tags are needed. A store that keeps related keys
// together (all of a user's sessions in a set beside them, for one MULTI or one Lua script) must
// put them in one slot with a hash tag: "session:{alice}:…".
//
// Reads go to the master (ReadOnly is off): a replica lags, and could serve a session that was
// just logged out. A clusterStore is safe for concurrent use.
type clusterStore struct {
	client  *redis.ClusterClient
	ttl     time.Duration
	timeout time.Duration
}

// master names the node the client's slot map gives key's slot to now. It reads the map the
// client holds; it asks the cluster only when the client has none yet.
func (s *clusterStore) master(ctx context.Context, key string) string {
	c, err := s.client.MasterForKey(ctx, key)
	if err != nil {
		return ""
	}
	return c.Options().Addr
}

func (s *clusterStore) Create(ctx context.Context, user string) (Session, []string, error) {
	sess, value, err := newSession(user, s.ttl)
	if err != nil {
		return Session{}, nil, err
	}
	key := sessionKey(sess.ID)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.Set(ctx, key, value, s.ttl).Err(); err != nil {
		return Session{}, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return sess, []string{s.master(ctx, key)}, nil
}

func (s *clusterStore) Get(ctx context.Context, id string) (Session, string, error) {
	if !validID(id) {
		return Session{}, "", ErrNotFound
	}
	key := sessionKey(id)
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	value, err := s.client.Get(tctx, key).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return Session{}, "", ErrNotFound
	case err != nil && ctx.Err() != nil:
		return Session{}, "", ctx.Err() // the client went away
	case err != nil:
		return Session{}, "", fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	served := s.master(tctx, key)
	var sess Session
	if err := json.Unmarshal(value, &sess); err != nil {
		return Session{}, "", fmt.Errorf("sessions: %s holds a corrupt session: %w", served, err)
	}
	return sess, served, nil
}

func (s *clusterStore) Delete(ctx context.Context, id string) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	n, err := s.client.Del(ctx, sessionKey(id)).Result()
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return n > 0, nil
}

// Replicas asks the cluster for its shards (CLUSTER SHARDS, Redis 7) and returns the nodes of
// the session key's slot that are online: the master, then its replicas. A replica that has
// replicated nothing yet counts as loading, not online.
func (s *clusterStore) Replicas(ctx context.Context, id string) ([]string, error) {
	shards, err := s.shards(ctx)
	if err != nil {
		return nil, err
	}
	slot := int64(keySlot(sessionKey(id)))
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if r.Start <= slot && slot <= r.End {
				var names []string
				for _, n := range sh.Nodes {
					if n.Health == "online" {
						names = append(names, nodeAddr(n))
					}
				}
				return names, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: no node serves slot %d", ErrUnavailable, slot)
}

// shards returns CLUSTER SHARDS with every shard's master first.
func (s *clusterStore) shards(ctx context.Context) ([]redis.ClusterShard, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	shards, err := s.client.ClusterShards(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	for _, sh := range shards {
		slices.SortStableFunc(sh.Nodes, func(a, b redis.Node) int {
			return cmp.Compare(roleOrder(a.Role), roleOrder(b.Role))
		})
	}
	return shards, nil
}

func roleOrder(role string) int {
	if role == "master" {
		return 0
	}
	return 1
}

// nodeAddr is the address a node announces: its preferred endpoint (an IP address, or a host
// name with cluster-preferred-endpoint-type hostname) and port. The client's slot map uses the
// same.
func nodeAddr(n redis.Node) string {
	return net.JoinHostPort(n.Endpoint, strconv.FormatInt(n.Port, 10))
}

// keySlot is Redis Cluster's hash slot of key: CRC16 (XMODEM) of the key, or of its hash tag
// (the text between the first "{" and the next "}", when not empty), mod 16384.
func keySlot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// newSession makes a session for user that lasts ttl, and its JSON.
func newSession(user string, ttl time.Duration) (Session, []byte, error) {
	now := time.Now()
	sess := Session{ID: rand.Text(), User: user, Created: now.UTC(), Expires: now.Add(ttl).UTC()}
	value, err := json.Marshal(sess)
	return sess, value, err
}

// clusterNodeView is one node of the cluster in GET /admin/nodes.
type clusterNodeView struct {
	Addr   string `json:"addr"`
	Role   string `json:"role"`   // master or replica
	Health string `json:"health"` // online, failed or loading, as the cluster says
	Keys   *int64 `json:"keys"`   // keys in the node's database; null when it cannot be asked
	Error  string `json:"error,omitempty"`
}

// shardView is one shard of the cluster: its slots, its master and replicas.
type shardView struct {
	Slots []string          `json:"slots"` // ranges, "0-5460"
	Nodes []clusterNodeView `json:"nodes"` // master first
}

// clusterView is GET /admin/nodes in cluster mode.
type clusterView struct {
	Mode   string      `json:"mode"` // "cluster"
	Shards []shardView `json:"shards"`
}

// view asks the cluster for its shards, and every node the client knows of for its number of
// keys, at once (ForEachShard). A node the client cannot reach has its error instead.
func (s *clusterStore) view(ctx context.Context) (clusterView, error) {
	shards, err := s.shards(ctx)
	if err != nil {
		return clusterView{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var mu sync.Mutex
	keys := map[string]int64{}
	errs := map[string]string{}
	_ = s.client.ForEachShard(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs[c.Options().Addr] = err.Error()
			return err
		}
		keys[c.Options().Addr] = n
		return nil
	}) // each node's error is in errs
	v := clusterView{Mode: "cluster", Shards: []shardView{}}
	for _, sh := range shards {
		if len(sh.Slots) == 0 {
			continue
		}
		sv := shardView{}
		for _, r := range sh.Slots {
			sv.Slots = append(sv.Slots, fmt.Sprintf("%d-%d", r.Start, r.End))
		}
		for _, n := range sh.Nodes {
			nv := clusterNodeView{Addr: nodeAddr(n), Role: n.Role, Health: n.Health}
			if k, ok := keys[nv.Addr]; ok {
				nv.Keys = &k
			} else {
				nv.Error = cmp.Or(errs[nv.Addr], "not asked")
			}
			sv.Nodes = append(sv.Nodes, nv)
		}
		v.Shards = append(v.Shards, sv)
	}
	slices.SortFunc(v.Shards, func(a, b shardView) int { return cmp.Compare(a.Nodes[0].Addr, b.Nodes[0].Addr) })
	return v, nil
}
