package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// redisStore keeps the services' state in Redis, beside the streams, so that every worker shares
// stock, outbox and dead letters (orders themselves are in the event store). Keys:
//
//	orders:reserved:<id>  hash: step:inventory = the consumer that reserved the order's items
//	orders:stock          hash: SKU → units left
//	orders:outbox       list of Notification (JSON)
//	orders:deadletters  list of DeadLetter (JSON)
type redisStore struct {
	rdb redis.UniversalClient
}

const (
	keyStock       = "orders:stock"
	keyOutbox      = "orders:outbox"
	keyDeadLetters = "orders:deadletters"
	stepPrefix     = "step:"
)

func reservedKey(id int) string { return "orders:reserved:" + strconv.Itoa(id) }

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

func (s *redisStore) Reserve(ctx context.Context, id int, items []Item, consumer string) error {
	args := []any{stepPrefix + groupInventory, consumer}
	for _, it := range merge(items) {
		args = append(args, it.SKU, it.Qty)
	}
	res, err := reserveScript.Run(ctx, s.rdb, []string{keyStock, reservedKey(id)}, args...).Slice()
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
	return s.push(ctx, keyDeadLetters, d)
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
