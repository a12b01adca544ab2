package franz_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/drivertest"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/internal/testredis"
	"github.com/polykafka/polykafka/offsetstore"
	redisstore "github.com/polykafka/polykafka/offsetstore/redis"
	"github.com/polykafka/polykafka/producer"
)

func redisAddr(t *testing.T) string { return testredis.Addr(t) }

func newRedisStore(t *testing.T, addr string) *redisstore.Store { return testredis.Store(t, addr) }

// TestConformanceRedisStore runs the conformance suite with the Redis
// store instead of the group's commits in Kafka: the start-offset
// guarantee must hold with positions kept outside Kafka.
func TestConformanceRedisStore(t *testing.T) {
	addr := redisAddr(t)
	drivertest.Run(t, drivertest.Harness{
		Name:          "franz",
		NewBackend:    testBackend,
		Transactions:  true,
		StableOffsets: true,
		Reader:        true,
		KIP848:        true,
		CheckAs: func(t *testing.T, c *consumer.Consumer, p *producer.Producer) {
			var cl *kgo.Client
			assert.True(t, c.As(&cl), "a franz consumer exposes its *kgo.Client")
		},
		Store: func(t *testing.T) offsetstore.Store { return newRedisStore(t, addr) },
	})
}

// cutProxy forwards TCP connections to an address until cut, which closes
// the connections in flight and refuses new ones: Redis going away under a
// running consumer.
type cutProxy struct {
	l     net.Listener
	to    string
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{l: l, to: to}
	p.wg.Go(p.accept)
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) addr() string { return p.l.Addr().String() }

func (p *cutProxy) accept() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.to)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(out, in); _ = out.Close() })
		p.wg.Go(func() { _, _ = io.Copy(in, out); _ = in.Close() })
	}
}

func (p *cutProxy) cut() {
	_ = p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestRedisStoreFailureIsClassified cuts Redis away from a running
// consumer: its Commit must fail with an Unavailable error (which the
// consumer and the application may retry), and nothing may fall back to
// committing in Kafka.
func TestRedisStoreFailureIsClassified(t *testing.T) {
	addr := redisAddr(t)
	cluster := testcluster.New(t)
	topic, group := cluster.Topic(t, 1), cluster.Group(t)
	for i := range 5 {
		cluster.Produce(t, &kgo.Record{Topic: topic, Partition: 0, Value: []byte{byte('a' + i)}})
	}

	proxy := newCutProxy(t, addr)
	rdb := redis.NewClient(&redis.Options{Addr: proxy.addr(), MaxRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	store, err := redisstore.New(rdb, nil)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := consumer.New(ctx, testBackend(t, cluster.Brokers()), group, []string{topic},
		&consumer.Options{Store: store, Initial: discovery.Earliest, Commit: consumer.CommitManual, CloseTimeout: 5 * time.Second})
	require.NoError(t, err, "consumer.New")
	t.Cleanup(func() { _ = c.Close() })

	var got []*polykafka.Record
	for len(got) < 5 {
		rs, err := c.Poll(ctx)
		require.NoError(t, err, "Poll")
		got = append(got, rs...)
	}
	c.Mark(got[:3]...)
	require.NoError(t, c.Commit(ctx), "Commit with Redis up")
	pos, err := newRedisStore(t, addr).Load(ctx, group, topic)
	require.NoError(t, err)
	assert.Equal(t, offsetstore.Position{Offset: 3, Baseline: 1}, pos[0], "Commit stored the position in Redis")

	proxy.cut()
	c.Mark(got[3:]...)
	err = c.Commit(ctx)
	require.Error(t, err, "Commit with Redis gone must fail, never succeed silently")
	assert.Equal(t, polykafka.Unavailable, polykafka.Code(err), "Commit with Redis gone is Unavailable: %v", err)
	assert.True(t, polykafka.IsRetryable(err), "Commit with Redis gone is retryable: %v", err)
	assert.Empty(t, cluster.Committed(t, group, topic), "a Redis failure never falls back to committing in Kafka")

	pos, err = newRedisStore(t, addr).Load(ctx, group, topic)
	require.NoError(t, err)
	assert.Equal(t, int64(3), pos[0].Offset, "the failed Commit stored nothing")
	err = c.Close()
	if err != nil {
		assert.Equal(t, polykafka.Unavailable, polykafka.Code(err), "Close's commit with Redis gone is Unavailable: %v", err)
	}
}
