// Package franz is the polykafka backend for github.com/twmb/franz-go (kgo).
//
//	b := franz.New(polykafka.Connection{Brokers: []string{"localhost:9092"}})
//	c, err := consumer.New(ctx, b, "billing", []string{"orders"}, nil)
//	p, err := producer.New(ctx, b, nil)
//
// # Configuration
//
// [New] takes the portable [polykafka.Connection] (brokers, client id, TLS,
// SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512) and native kgo options, which
// are applied after the connection's, so they win (kgo.SeedBrokers,
// kgo.DialTLSConfig, kgo.SASL, timeouts, ...). Each client gets only the
// options of its kind: producer options (kgo.ProducerOpt) only on
// producers, consumer and group options (kgo.ConsumerOpt, kgo.GroupOpt)
// only on consumers, and the rest on both. The adapter adds what carries
// polykafka's semantics:
//
//   - consumers: ConsumerGroup, ConsumeTopics, DisableAutoCommit, the
//     eager "range" balancer (wrapped, see below), OnPartitionsAssigned /
//     Revoked / Lost, AdjustFetchOffsetsFn and NoResetOffset, so that every
//     partition starts where the portable layer decided and an
//     out-of-range fetch is reported rather than reset; FetchIsolationLevel
//     from consumer.Options.ReadCommitted; a broker hook and WithContext,
//     so that Close can end a JoinGroup or SyncGroup in flight, which kgo
//     otherwise waits for (leave.go). These are applied after yours and
//     cannot be overridden: a kgo.WithContext of yours is replaced.
//   - producers: acks, idempotence, transactional id, compression, linger
//     and batch size from producer.Options, and a partitioner that honours
//     per-record partitions and otherwise uses kgo's
//     UniformBytesPartitioner, whose keyed path is Kafka's murmur2
//     (driver.KeyPartition). These are applied before yours, so a native
//     option wins.
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
// With consumer.Options.GroupProtocol set to GroupProtocolConsumer the
// member runs KIP-848 instead: kgo's ServerSideBalancer with kgo's own
// RangeBalancer (the coordinator's "range" assignor), since kgo runs KIP-848
// only with its own range or sticky balancer; no user data, no leader, no
// forced rebalance. OpenConsumer fails with Unimplemented when the cluster
// does not serve ConsumerGroupHeartbeat v1, where kgo would fall back to
// the classic protocol silently. Partitions whose start decision failed
// stay assigned, paused, until the portable layer decides them again.
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
// None known against the contract: every optional interface (Pauser,
// Seeker, Transactor, GroupMember) is implemented. Resume takes effect at
// the next fetch from the partition's leader: kgo does not cut short a
// fetch already waiting on that broker for other partitions, so the
// resumed partition's records can come up to kgo.FetchMaxWait (5s by
// default) later.
package franz

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/errs"
)

// Backend opens franz-go consumers and producers. It implements
// driver.Backend; pass it to consumer.New and producer.New.
type Backend struct {
	conn polykafka.Connection
	opts []kgo.Opt
}

// New returns a backend whose clients reach the cluster through conn,
// configured further by opts (applied after conn's settings; see the
// package doc). Invalid settings are reported when a client is opened.
func New(conn polykafka.Connection, opts ...kgo.Opt) *Backend {
	return &Backend{conn: conn, opts: opts}
}

// clientOpts returns the connection's options and the native options for
// a client of one kind: native producer options only for producers,
// consumer and group options only for consumers.
func (b *Backend) clientOpts(producer bool) ([]kgo.Opt, error) {
	if err := b.conn.Validate(); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(b.conn.Brokers...),
		kgo.ClientID(b.conn.ClientIDOr("polykafka")),
	}
	tlsCfg, err := b.conn.TLSConfig()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsCfg))
	}
	if s := b.conn.SASL; s != nil {
		switch s.Mechanism {
		case polykafka.SASLPlain:
			opts = append(opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
		case polykafka.SASLScramSHA256:
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
		case polykafka.SASLScramSHA512:
			opts = append(opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
		}
	}
	for _, o := range b.opts {
		_, isProducer := o.(kgo.ProducerOpt)
		_, isConsumer := o.(kgo.ConsumerOpt)
		_, isGroup := o.(kgo.GroupOpt)
		if producer && (isConsumer || isGroup) || !producer && isProducer {
			continue
		}
		opts = append(opts, o)
	}
	return opts, nil
}

// plainOpts returns the options of a client that neither produces nor
// consumes (the admin's, the one-off LeaveGroup of leave.go): the
// connection's, and the native options that are neither producer,
// consumer nor group options.
func (b *Backend) plainOpts() ([]kgo.Opt, error) {
	base, err := b.clientOpts(false)
	if err != nil {
		return nil, err
	}
	opts := make([]kgo.Opt, 0, len(base))
	for _, o := range base {
		_, isConsumer := o.(kgo.ConsumerOpt)
		_, isGroup := o.(kgo.GroupOpt)
		if !isConsumer && !isGroup {
			opts = append(opts, o)
		}
	}
	return opts, nil
}

// Name implements driver.Backend.
func (*Backend) Name() string { return "franz" }

var _ driver.Backend = (*Backend)(nil)

// errorCode is the classification shared by the consumer and the producer.
func errorCode(err error) polykafka.ErrorCode {
	var ke *kerr.Error
	switch {
	case err == nil:
		return polykafka.OK
	case errors.As(err, &ke):
		return polykafka.CodeForKafka(ke.Code)
	case errors.Is(err, kgo.ErrClientClosed):
		return polykafka.Closed
	case errors.Is(err, errInvalidPartition):
		return polykafka.InvalidArgument
	case errs.Transport(err),
		errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries):
		// ErrRecordTimeout: not acknowledged within the delivery timeout;
		// ErrRecordRetries: a native RecordRetries limit was reached.
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
