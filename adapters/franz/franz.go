// Package franz is the polykafka backend for github.com/twmb/franz-go (kgo).
//
//	b := franz.New(kgo.SeedBrokers("localhost:9092"))
//	c, err := consumer.New(ctx, b, "billing", []string{"orders"}, nil)
//	p, err := producer.New(ctx, b, nil)
//
// # Configuration
//
// [New] takes native kgo options, which apply to every client the backend
// opens (seed brokers, TLS, SASL, timeouts, ...). The adapter adds the
// options that carry polykafka's semantics:
//
//   - consumers: ConsumerGroup, ConsumeTopics, DisableAutoCommit, the
//     eager "range" balancer (wrapped, see below), OnPartitionsAssigned /
//     Revoked / Lost and AdjustFetchOffsetsFn, so that every partition
//     starts where the portable layer decided. These are applied after
//     yours and cannot be overridden.
//   - producers: acks, idempotence, compression, linger and batch size
//     from producer.Options, and a partitioner that honours per-record
//     partitions and otherwise uses kgo's UniformBytesPartitioner, whose
//     keyed path is Kafka's murmur2. These are applied before yours, so a
//     native option wins.
//
// A kgo.WithLogger option of yours replaces the adapter's bridge to the
// slog.Logger of the portable options.
//
// # Group protocol
//
// Consumers join with the "range" protocol, the one all four polykafka
// backends implement, so that members on different backends can share a
// group. The balancer puts the partition counts the member last saw in its
// JoinGroup user data, so that a member that notices new partitions makes
// the group rebalance even when it is not the leader; and when this member
// leads, it refreshes its metadata until it sees every partition any member
// reported before it plans, because kgo plans from its metadata cache.
//
// # As
//
//   - Consumer.As and Producer.As: **kgo.Client.
//   - Record.Native: *kgo.Record.
//   - errors: *kerr.Error through errors.As.
//
// # Errors
//
// Kafka protocol errors (*kerr.Error) are classified with
// polykafka.CodeForKafka; kgo.ErrClientClosed is Closed; network errors
// and timeouts are Unavailable.
//
// # Limitations
//
// A fetch that runs out of range in the middle of consumption (not at
// assignment) is reset by kgo to the partition's start, which matches the
// default OutOfRange policy but not a different one.
package franz

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// Backend opens franz-go consumers and producers. It implements
// driver.Backend; pass it to consumer.New and producer.New.
type Backend struct {
	opts []kgo.Opt
}

// New returns a backend whose clients are built with opts (at least
// kgo.SeedBrokers).
func New(opts ...kgo.Opt) *Backend {
	return &Backend{opts: opts}
}

// Name implements driver.Backend.
func (*Backend) Name() string { return "franz" }

var _ driver.Backend = (*Backend)(nil)

// errorCode is the classification shared by the consumer and the producer.
func errorCode(err error) polykafka.ErrorCode {
	var ke *kerr.Error
	var ne net.Error
	switch {
	case err == nil:
		return polykafka.OK
	case errors.As(err, &ke):
		return polykafka.CodeForKafka(ke.Code)
	case errors.Is(err, kgo.ErrClientClosed):
		return polykafka.Closed
	case errors.Is(err, errInvalidPartition):
		return polykafka.InvalidArgument
	case errors.As(err, &ne), errors.Is(err, net.ErrClosed):
		return polykafka.Unavailable
	}
	var ee *kgo.ErrFirstReadEOF
	if errors.As(err, &ee) {
		return polykafka.Unavailable
	}
	return polykafka.Unknown
}

// slogLogger bridges kgo's logger to slog. kgo's info messages (joins,
// assignments, metadata) go to slog's debug level: at info level the
// portable layer already reports what matters.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case s.l.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelDebug
	case s.l.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case s.l.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (s slogLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l := slog.LevelDebug
	if strings.HasPrefix(msg, "received an OffsetCommitResponse after our group session has ended") {
		// Logged by kgo for every commit made before kgo tracks offsets
		// itself (commit-on-assign runs before kgo fetches offsets). The
		// commit succeeded; only kgo's bookkeeping, which polykafka does
		// not use, skipped it.
		level = kgo.LogLevelDebug
	}
	switch level {
	case kgo.LogLevelError:
		l = slog.LevelError
	case kgo.LogLevelWarn:
		l = slog.LevelWarn
	}
	s.l.Log(context.Background(), l, "kgo: "+msg, keyvals...)
}
