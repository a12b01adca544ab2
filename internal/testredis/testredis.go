// Package testredis gives tests the Redis server of the run: REDIS_ADDR,
// which .ci/run sets after starting a redis-server, or a skip that says so.
package testredis

import (
	"os"
	"testing"

	"github.com/redis/go-redis/v9"

	redisstore "github.com/polykafka/polykafka/offsetstore/redis"
)

// Addr returns REDIS_ADDR, or skips tb.
func Addr(tb testing.TB) string {
	tb.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		tb.Skip("REDIS_ADDR not set: skipping the tests that need a real redis-server (.ci/run starts one and sets it)")
	}
	return addr
}

// Store returns a Redis store on a client of its own to addr, closed when
// tb ends.
func Store(tb testing.TB, addr string) *redisstore.Store {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	tb.Cleanup(func() { _ = c.Close() })
	s, err := redisstore.New(c, nil)
	if err != nil {
		tb.Fatalf("redisstore.New: %v", err)
	}
	return s
}
