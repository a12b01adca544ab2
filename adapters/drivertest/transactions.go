package drivertest

// Transactions: records and offsets committed or aborted together.

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/producer"
)

func testTransactions(t *testing.T, e *env) {
	topic := e.cluster.Topic(t, 2)
	txID := "tx-" + e.cluster.Group(t)
	if !e.h.Transactions {
		_, err := producer.New(e.ctx(wait), e.backend, &producer.Options{TransactionalID: txID, Logger: e.logger})
		requireCode(t, e, err, polykafka.Unimplemented, "a transactional producer on a backend without transactions")
		return
	}
	p := e.newProducer(&producer.Options{TransactionalID: txID})
	ctx := e.ctx(wait)
	send := func(tag string, n int) []string {
		var vals []string
		for i := 0; i < n; i++ {
			v := fmt.Sprintf("%s-%d", tag, i)
			vals = append(vals, v)
			p.SendAsync(ctx, &polykafka.Record{Topic: topic, Key: []byte(v), Value: []byte(v)}, func(_ *polykafka.Record, err error) {
				assert.NoError(t, err, "%s: a record of an open transaction is delivered", e.rule)
			})
		}
		return vals
	}
	require.NoError(t, p.BeginTransaction(ctx))
	committed := send("committed1", 10)
	require.NoError(t, p.CommitTransaction(ctx), "%s: CommitTransaction", e.rule)
	require.NoError(t, p.BeginTransaction(ctx))
	aborted := send("aborted", 10)
	require.NoError(t, p.AbortTransaction(ctx), "%s: AbortTransaction", e.rule)
	require.NoError(t, p.BeginTransaction(ctx))
	committed = append(committed, send("committed2", 10)...)
	require.NoError(t, p.CommitTransaction(ctx))

	s := newSink()
	c := e.newConsumer(e.cluster.Group(t), []string{topic}, &consumer.Options{Initial: discovery.Earliest, ReadCommitted: true})
	e.run(c, s.handler)
	e.received(s, committed, "records of committed transactions")
	// The last committed records came after the aborted ones in every
	// partition, so by now the aborted ones would have been read.
	e.noneOf(s, aborted, "a read-committed consumer delivered records of an aborted transaction")

	// Consume-transform-produce: the input offsets commit with the output.
	out := e.cluster.Topic(t, 1)
	in := e.cluster.Group(t)
	tc := e.newConsumer(in, []string{topic}, &consumer.Options{Initial: discovery.Earliest, ReadCommitted: true, Commit: consumer.CommitTransactional})
	polled := 0
	for polled < len(committed) {
		rs, err := tc.Poll(ctx)
		require.NoError(t, err)
		require.NoError(t, p.BeginTransaction(ctx))
		for _, r := range rs {
			p.SendAsync(ctx, &polykafka.Record{Topic: out, Value: r.Value}, nil)
		}
		tc.Mark(rs...)
		require.NoError(t, p.SendOffsets(ctx, tc), "%s: SendOffsets", e.rule)
		require.NoError(t, p.CommitTransaction(ctx), "%s: committing a transaction with offsets", e.rule)
		polled += len(rs)
	}
	// Read as a consumer would: a real broker writes the markers after it
	// answers CommitTransaction, and until then only a stable fetch tells
	// the pending commit from the old one.
	got := e.cluster.CommittedStable(t, in, topic)
	var sum int64
	for _, r := range got {
		sum += r.At
	}
	ends := e.cluster.EndOffsets(t, topic)
	var endSum int64
	for _, o := range ends {
		endSum += o
	}
	// Each partition's log ends with the last transaction's commit marker,
	// one offset past the last record the consumer can read.
	assert.Equal(t, endSum-int64(len(ends)), sum, "%s: the offsets sent with the transactions are the group's commits", e.rule)
}
