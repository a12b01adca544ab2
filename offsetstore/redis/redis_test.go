package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/offsetstore"
	redisstore "github.com/polykafka/polykafka/offsetstore/redis"
	"github.com/polykafka/polykafka/offsetstore/storetest"
)

// client returns a client of the redis-server in REDIS_ADDR, or skips.
func client(t *testing.T) *redis.Client {
	t.Helper()
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		t.Skip("REDIS_ADDR not set: skipping the tests that need a real redis-server (.ci/run starts one and sets it)")
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Ping(t.Context()).Err(), "redis-server at REDIS_ADDR=%s does not answer PING", addr)
	return c
}

func newStore(t *testing.T, c redis.UniversalClient, opts *redisstore.Options) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(c, opts)
	require.NoError(t, err, "redisstore.New")
	return s
}

func uniqueTopic(t *testing.T, _ int32) string { return storetest.UniqueName(t) }

func TestConformance(t *testing.T) {
	c := client(t)
	storetest.Run(t,
		func(t *testing.T) (offsetstore.Store, string) {
			return newStore(t, c, nil), storetest.UniqueName(t)
		},
		uniqueTopic,
	)
}

// TestConformanceClientPerCase runs the suite with a client and a store of
// its own per case, under a prefix other than the default.
func TestConformanceClientPerCase(t *testing.T) {
	client(t)
	storetest.Run(t,
		func(t *testing.T) (offsetstore.Store, string) {
			return newStore(t, client(t), &redisstore.Options{Prefix: "polykafka-test"}), storetest.UniqueName(t)
		},
		uniqueTopic,
	)
}

func pos(offset int64, baseline int32) offsetstore.Position {
	return offsetstore.Position{Offset: offset, Baseline: baseline}
}

func tp(topic string, p int32) polykafka.TopicPartition {
	return polykafka.TopicPartition{Topic: topic, Partition: p}
}

func TestKeyLayout(t *testing.T) {
	c := client(t)
	ctx := t.Context()
	s := newStore(t, c, nil)
	group, topic := storetest.UniqueName(t), storetest.UniqueName(t)
	require.NoError(t, s.Save(ctx, group, map[polykafka.TopicPartition]offsetstore.Position{
		tp(topic, 0): pos(5, 3),
		tp(topic, 2): pos(1<<40, 0),
	}))
	key := "polykafka:{" + group + "}:" + topic
	assert.Equal(t, key, s.Key(group, topic), "the key is <prefix>:{<group>}:<topic>, as documented")
	got, err := c.HGetAll(ctx, key).Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"0": "5:3", "2": "1099511627776:0"}, got,
		"one hash per group and topic: field = partition, value = offset:baseline, as documented")

	// Braces and '%' in a group are escaped so that the hash tag is always
	// the whole group.
	odd := "}a{b%" + group
	assert.Equal(t, "polykafka:{%7Da%7Bb%25"+group+"}:"+topic, s.Key(odd, topic))
	require.NoError(t, s.Save(ctx, odd, map[polykafka.TopicPartition]offsetstore.Position{tp(topic, 1): pos(9, 2)}))
	loaded, err := s.Load(ctx, odd, topic)
	require.NoError(t, err)
	assert.Equal(t, map[int32]offsetstore.Position{1: pos(9, 2)}, loaded, "a group with braces is a group of its own")
	loaded, err = s.Load(ctx, group, topic)
	require.NoError(t, err)
	assert.Len(t, loaded, 2, "a group with braces does not touch another group's positions")

	p := newStore(t, c, &redisstore.Options{Prefix: "app"})
	assert.Equal(t, "app:{"+group+"}:"+topic, p.Key(group, topic), "Options.Prefix replaces the default prefix")
	loaded, err = p.Load(ctx, group, topic)
	require.NoError(t, err)
	assert.Empty(t, loaded, "stores with different prefixes do not see each other's positions")
}

// TestMembersNeverLoseEachOthersWrites saves different partitions of one
// topic from several "members" (each with a client of its own), many times
// and at the same time: every partition must end at its last saved offset.
func TestMembersNeverLoseEachOthersWrites(t *testing.T) {
	client(t)
	group, topic := storetest.UniqueName(t), storetest.UniqueName(t)
	const members, rounds = 4, 50
	var wg sync.WaitGroup
	errs := make(chan error, members*rounds)
	for m := range int32(members) {
		s := newStore(t, client(t), nil)
		wg.Go(func() {
			for r := range int64(rounds) {
				// Each member owns partitions m and m+members.
				errs <- s.Save(t.Context(), group, map[polykafka.TopicPartition]offsetstore.Position{
					tp(topic, m):         pos(r, 8),
					tp(topic, m+members): pos(1000+r, 8),
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	got, err := newStore(t, client(t), nil).Load(t.Context(), group, topic)
	require.NoError(t, err)
	want := make(map[int32]offsetstore.Position)
	for m := range int32(members) {
		want[m] = pos(rounds-1, 8)
		want[m+members] = pos(1000+rounds-1, 8)
	}
	assert.Equal(t, want, got, "concurrent Saves of different partitions must never lose each other's writes")
}

// TestSaveBackwardsIsApplied pins the documented rule: a Save replaces a
// position even with a smaller offset (an out-of-range reset to earliest
// must be stored, or the next start would skip records).
func TestSaveBackwardsIsApplied(t *testing.T) {
	c := client(t)
	s := newStore(t, c, nil)
	group, topic := storetest.UniqueName(t), storetest.UniqueName(t)
	require.NoError(t, s.Save(t.Context(), group, map[polykafka.TopicPartition]offsetstore.Position{tp(topic, 0): pos(1000, 2), tp(topic, 1): pos(50, 2)}))
	require.NoError(t, s.Save(t.Context(), group, map[polykafka.TopicPartition]offsetstore.Position{tp(topic, 0): pos(0, 2)}))
	got, err := s.Load(t.Context(), group, topic)
	require.NoError(t, err)
	assert.Equal(t, map[int32]offsetstore.Position{0: pos(0, 2), 1: pos(50, 2)}, got,
		"a smaller offset replaces a larger one, and only the named partition changes")
}

// TestSaveAllOrNothing checks that a Save that cannot write one of its
// keys writes none of them.
func TestSaveAllOrNothing(t *testing.T) {
	c := client(t)
	s := newStore(t, c, nil)
	group, a, b := storetest.UniqueName(t), storetest.UniqueName(t)+"-a", storetest.UniqueName(t)+"-b"
	require.NoError(t, c.Set(t.Context(), s.Key(group, b), "not a hash", 0).Err())
	err := s.Save(t.Context(), group, map[polykafka.TopicPartition]offsetstore.Position{
		tp(a, 0): pos(1, 1),
		tp(b, 0): pos(2, 1),
	})
	require.Error(t, err, "a Save onto a key that holds another type fails")
	assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(err), "a key of the wrong type is InvalidArgument (choose another Prefix): %v", err)
	assert.Contains(t, err.Error(), s.Key(group, b), "the error names the key")
	got, err := s.Load(t.Context(), group, a)
	require.NoError(t, err)
	assert.Empty(t, got, "a failed Save writes nothing, not even its valid keys")
}

func TestLoadForeignValueFails(t *testing.T) {
	c := client(t)
	s := newStore(t, c, nil)
	group, topic := storetest.UniqueName(t), storetest.UniqueName(t)
	for _, v := range []string{"12", "x:1", "1:-1", "-4:1", "1:2:3"} {
		require.NoError(t, c.Del(t.Context(), s.Key(group, topic)).Err())
		require.NoError(t, c.HSet(t.Context(), s.Key(group, topic), "0", v).Err())
		_, err := s.Load(t.Context(), group, topic)
		require.Error(t, err, "Load of the value %q, which this store did not write, fails rather than guess", v)
		assert.Equal(t, polykafka.Unknown, polykafka.Code(err))
		assert.Contains(t, err.Error(), s.Key(group, topic), "the error names the key")
	}
}

func TestNewInvalid(t *testing.T) {
	_, err := redisstore.New(nil, nil)
	require.Error(t, err)
	assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(err))
	assert.Contains(t, err.Error(), "client")

	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer c.Close()
	for _, prefix := range []string{"a{b", "}"} {
		_, err = redisstore.New(c, &redisstore.Options{Prefix: prefix})
		require.Error(t, err, "prefix %q", prefix)
		assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(err))
		assert.Contains(t, err.Error(), "Options.Prefix", "the error names the field")
	}
}

func TestInvalidArguments(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached
	defer c.Close()
	s := newStore(t, c, nil)
	_, err := s.Load(t.Context(), "", "t")
	assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(err), "Load with an empty group")
	_, err = s.Load(t.Context(), "g", "")
	assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(err), "Load with an empty topic")
	err = s.Save(t.Context(), "g", map[polykafka.TopicPartition]offsetstore.Position{tp("t", 0): pos(-2, 1)})
	assert.Equal(t, polykafka.InvalidArgument, polykafka.Code(err), "Save of a negative offset")
}

func TestUnreachableIsUnavailable(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: testcluster.DeadAddress(t), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	s := newStore(t, c, nil)
	err := s.Save(t.Context(), "g", map[polykafka.TopicPartition]offsetstore.Position{tp("t", 0): pos(1, 1)})
	require.Error(t, err)
	assert.Equal(t, polykafka.Unavailable, polykafka.Code(err), "Save with Redis unreachable: %v", err)
	assert.True(t, polykafka.IsRetryable(err))
	_, err = s.Load(t.Context(), "g", "t")
	require.Error(t, err)
	assert.Equal(t, polykafka.Unavailable, polykafka.Code(err), "Load with Redis unreachable: %v", err)
}

func TestClosedClientIsClosed(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: testcluster.DeadAddress(t)})
	s := newStore(t, c, nil)
	require.NoError(t, c.Close())
	_, err := s.Load(t.Context(), "g", "t")
	assert.Equal(t, polykafka.Closed, polykafka.Code(err), "Load on a closed client: %v", err)
}

// TestContextHonoured runs a Save and a Load against a server that accepts
// connections and never answers, with a client that ignores contexts
// (ContextTimeoutEnabled off, long read timeout): both must return the
// context's error by its deadline.
func TestContextHonoured(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: testcluster.SilentAddress(t), ReadTimeout: 5 * time.Second, MaxRetries: -1, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	s := newStore(t, c, nil)

	for name, f := range map[string]func(context.Context) error{
		"Save": func(ctx context.Context) error {
			return s.Save(ctx, "g", map[polykafka.TopicPartition]offsetstore.Position{tp("t", 0): pos(1, 1)})
		},
		"Load": func(ctx context.Context) error { _, err := s.Load(ctx, "g", "t"); return err },
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		start := time.Now()
		err := f(ctx)
		cancel()
		assert.Less(t, time.Since(start), 2*time.Second, "%s returns by its context's deadline", name)
		assert.True(t, errors.Is(err, context.DeadlineExceeded), "%s returns the context's error itself: %v", name, err)
		assert.Equal(t, context.DeadlineExceeded, err, "%s does not wrap the context's error", name)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Load(ctx, "g", "t")
	assert.Equal(t, context.Canceled, err, "a cancelled context fails at once")
}

func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	defer rdb.Close()
	store, err := redisstore.New(rdb, &redisstore.Options{Prefix: "myapp"})
	if err != nil {
		panic(err)
	}
	// Pass store as consumer.Options.Store.
	fmt.Println(store.Key("orders-app", "orders"))
	// Output: myapp:{orders-app}:orders
}
