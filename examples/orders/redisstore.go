package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// redisStore keeps the pipeline's state in Redis, beside the streams, so that the API process and
// every worker share orders, stock, outbox and dead letters. Keys:
//
//	orders:seq          INCR counter of order IDs
//	orders:order:<id>   hash: placed (JSON), trace, step:<group> = consumer, failure
//	orders:stock        hash: SKU → units left
//	orders:outbox       list of Notification (JSON)
//	orders:deadletters  list of DeadLetter (JSON)
type redisStore struct {
	rdb redis.UniversalClient
}

const (
	keySeq         = "orders:seq"
	keyStock       = "orders:stock"
	keyOutbox      = "orders:outbox"
	keyDeadLetters = "orders:deadletters"
	stepPrefix     = "step:"
)

func orderKey(id int) string { return "orders:order:" + strconv.Itoa(id) }

// reserveScript checks and takes the stock of every item in one atomic step, and marks the order
// reserved in the same step: two workers handling the same event (a redelivery after a crash)
// cannot both take the stock. It returns {0} when it reserved, {1} when the order already was,
// {2, sku} when sku is short.
var reserveScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {1} end
for i = 3, #ARGV, 2 do
  local have = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if have < tonumber(ARGV[i+1]) then return {2, ARGV[i], have} end
end
for i = 3, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i+1]))
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {0}
`)

// newRedisStore returns a store on rdb, stocking every catalog SKU that has no stock entry yet
// (HSETNX), so that a second process starting does not refill the shelves.
func newRedisStore(ctx context.Context, rdb redis.UniversalClient) (*redisStore, error) {
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sku, prod := range catalog {
			p.HSetNX(ctx, keyStock, sku, prod.Stock)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stock the shelves: %w", err)
	}
	return &redisStore{rdb: rdb}, nil
}

func (s *redisStore) CreateOrder(ctx context.Context, o OrderPlaced, traceID string) (OrderPlaced, error) {
	id, err := s.rdb.Incr(ctx, keySeq).Result()
	if err != nil {
		return o, err
	}
	o.ID = int(id)
	data, err := json.Marshal(o)
	if err != nil {
		return o, err
	}
	return o, s.rdb.HSet(ctx, orderKey(o.ID), "placed", data, "trace", traceID).Err()
}

func (s *redisStore) Order(ctx context.Context, id int) (Order, error) {
	h, err := s.rdb.HGetAll(ctx, orderKey(id)).Result()
	if err != nil {
		return Order{}, err
	}
	return decodeOrder(h)
}

// decodeOrder turns an order hash into an Order.
func decodeOrder(h map[string]string) (Order, error) {
	if h["placed"] == "" {
		return Order{}, errNotFound
	}
	o := Order{TraceID: h["trace"], Failure: h["failure"], Steps: map[string]string{}}
	if err := json.Unmarshal([]byte(h["placed"]), &o.OrderPlaced); err != nil {
		return Order{}, err
	}
	for k, v := range h {
		if step, ok := strings.CutPrefix(k, stepPrefix); ok {
			o.Steps[step] = v
		}
	}
	o.TotalCents = o.total()
	o.Status = o.status()
	return o, nil
}

func (s *redisStore) Orders(ctx context.Context) ([]Order, error) {
	last, err := s.rdb.Get(ctx, keySeq).Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	first := max(1, last-maxListed+1)
	cmds := make([]*redis.MapStringStringCmd, 0, last-first+1)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for id := first; id <= last; id++ {
			cmds = append(cmds, p.HGetAll(ctx, orderKey(id)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Order, 0, len(cmds))
	for _, c := range cmds {
		o, err := decodeOrder(c.Val())
		if errors.Is(err, errNotFound) {
			continue // an ID taken by a CreateOrder that failed half-way
		}
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func (s *redisStore) MarkDone(ctx context.Context, id int, step, consumer string) error {
	return s.rdb.HSet(ctx, orderKey(id), stepPrefix+step, consumer).Err()
}

func (s *redisStore) Reserve(ctx context.Context, id int, items []Item, consumer string) error {
	args := []any{stepPrefix + groupInventory, consumer}
	for _, it := range merge(items) {
		args = append(args, it.SKU, it.Qty)
	}
	res, err := reserveScript.Run(ctx, s.rdb, []string{keyStock, orderKey(id)}, args...).Slice()
	if err != nil {
		return err
	}
	if code, _ := res[0].(int64); code == 2 && len(res) == 3 {
		return fmt.Errorf("%w: %v (%v left)", errOutOfStock, res[1], res[2])
	}
	return nil
}

func (s *redisStore) Stock(ctx context.Context) (map[string]int, error) {
	h, err := s.rdb.HGetAll(ctx, keyStock).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(h))
	for sku, v := range h {
		out[sku], _ = strconv.Atoi(v)
	}
	return out, nil
}

func (s *redisStore) AddNotification(ctx context.Context, n Notification) error {
	return s.push(ctx, keyOutbox, n)
}

func (s *redisStore) Notifications(ctx context.Context) ([]Notification, error) {
	return list[Notification](ctx, s.rdb, keyOutbox)
}

func (s *redisStore) AddDeadLetter(ctx context.Context, d DeadLetter) error {
	if err := s.push(ctx, keyDeadLetters, d); err != nil {
		return err
	}
	return s.rdb.HSet(ctx, orderKey(d.OrderID), "failure", d.Group+": "+d.Error).Err()
}

func (s *redisStore) DeadLetters(ctx context.Context) ([]DeadLetter, error) {
	return list[DeadLetter](ctx, s.rdb, keyDeadLetters)
}

func (s *redisStore) push(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.rdb.RPush(ctx, key, data).Err()
}

// list decodes the last maxListed JSON entries of a Redis list.
func list[T any](ctx context.Context, rdb redis.UniversalClient, key string) ([]T, error) {
	raw, err := rdb.LRange(ctx, key, -maxListed, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(raw))
	for _, r := range raw {
		var v T
		if err := json.Unmarshal([]byte(r), &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// connectRedis connects to addr, or starts an embedded miniredis when addr is empty, and returns
// the client with a func that closes both.
func connectRedis(ctx context.Context, addr string, logger *slog.Logger) (redis.UniversalClient, func() error, error) {
	var embedded *miniredis.Miniredis
	if addr == "" {
		embedded = miniredis.NewMiniRedis()
		if err := embedded.Start(); err != nil {
			return nil, nil, fmt.Errorf("start embedded miniredis: %w", err)
		}
		addr = embedded.Addr()
		logger.Info("embedded miniredis started; point other processes at it with -redis", "redis", addr)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	closeAll := func() error {
		err := rdb.Close()
		if embedded != nil {
			embedded.Close()
		}
		return err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = closeAll()
		return nil, nil, fmt.Errorf("redis %s: %w", addr, err)
	}
	return rdb, closeAll, nil
}
