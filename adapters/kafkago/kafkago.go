// Package kafkago is the polykafka backend for github.com/segmentio/kafka-go.
//
//	b := kafkago.New(polykafka.Connection{Brokers: []string{"localhost:9092"}}, nil)
//	c, err := consumer.New(ctx, b, "billing", []string{"orders"}, nil)
//	r, err := consumer.NewReader(ctx, b, "audit", []string{"orders"}, &consumer.Options{Store: offsetstore.NewMemory()})
//	p, err := producer.New(ctx, b, nil)
//
// The package is named kafkago so that it never clashes with kafka-go's own
// package, kafka, which users import beside it for native settings.
//
// # Configuration
//
// [New] takes a [polykafka.Connection] and optional [Options] carrying
// kafka-go's own types. Brokers, ClientID, TLS and SASL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512) of the Connection build a kafka.Dialer and a
// kafka.Transport; an Options.Dialer or Options.Transport of yours replaces
// the one built from the Connection entirely (native settings win).
//
// Consumers do not use kafka.Reader, which hides the group (no assignment
// callback, no pause, start offsets of its own choosing) and whose
// kafka.Conn batches cannot tell a null key or value from an empty one.
// They are built on kafka.ConsumerGroup and kafka.Generation, and run one
// fetch loop per assigned partition, starting exactly at the offset the
// portable layer decided, that sends fetch requests through a
// kafka.Transport of the consumer's own (a copy of the backend's, so that
// each concurrent fetch gets its own connection and never waits behind
// another partition's long poll); read-committed fetches skip the records
// of aborted transactions. From
// Options.ConsumerGroup the adapter overrides ID, Brokers, Topics,
// GroupBalancers (the "range" balancer described below),
// WatchPartitionChanges (off: the portable layer watches partitions) and
// StartOffset (never used: every start offset is explicit); it sets Dialer,
// Logger and ErrorLogger only when yours are nil. Every other field
// (HeartbeatInterval, SessionTimeout, RebalanceTimeout, JoinGroupBackoff,
// RetentionTime, Timeout) is yours. Options.ReadBatch sets the fetch sizes
// and wait; its IsolationLevel is overridden by the portable ReadCommitted.
//
// Readers without a group (consumer.NewReader; the Backend implements
// driver.PartitionReader) are the same fetching machinery with no
// kafka.ConsumerGroup: Assign starts a partition's fetch loop at exactly the
// offset given, or restarts it there, and nothing else is fetched. They use
// the backend's Dialer and Transport and Options.ReadBatch;
// Options.ConsumerGroup does not apply.
//
// Producers use a kafka.Writer in Async mode with a Completion function,
// and hold at most Options.MaxBufferedRecords undelivered records. The
// Writer refuses a record outright when it cannot reach the cluster (its
// metadata lookup fails); the producer then keeps the record, and those
// sent after it, in order, handing them to the Writer again after
// kafka-go's write backoff until each record's context ends or the
// producer is closed. The
// adapter sets Addr, Transport, Async, Completion, Balancer, RequiredAcks,
// Compression, BatchTimeout (the portable Linger; a zero Linger becomes
// 1µs, so that a synchronous send never waits out kafka-go's 1 s default,
// kafka-go#417), BatchBytes, Logger and ErrorLogger, then calls
// Options.ConfigureWriter, which may change any field except Async,
// Completion and Transport.
//
// Commits carry metadata: they are sent with kafka.Client.OffsetCommit with
// the generation id and member id, since Generation.CommitOffsets has no
// metadata, and only when the portable layer commits (never per message,
// kafka-go#789).
//
// # Group protocol
//
// Consumers join with the eager "range" protocol (kafka-go's
// RangeGroupBalancer, wrapped), the one all four polykafka backends
// implement. The balancer's UserData, which kafka-go calls on every join,
// carries the partition counts given to Rejoin, so a member that is not the
// leader and rejoins after noticing new partitions changes its join
// metadata and the coordinator rebalances (kafka-go#646). Rejoin ends the
// current generation by returning from its gen.Start function. When this
// member leads, it plans with the partitions kafka-go reads for every
// member's topics, including topics it does not subscribe to itself
// (kafka-go#1351), extended with every partition a member reported in its
// user data.
//
// # As
//
// As takes a pointer to a variable of the native type:
//
//   - Consumer.As: *kafka.ConsumerGroup, *kafka.Generation (the current
//     generation, nil between generations), *kafka.Client (commits, offset
//     fetches).
//   - Consumer.As of a reader (consumer.NewReader): *kafka.Client only; a
//     reader has no *kafka.ConsumerGroup and no *kafka.Generation.
//   - Producer.As: *kafka.Writer, *kafka.Client.
//   - Record.Native: *kafka.Message (consumed records); Record.As also
//     fills a kafka.Message.
//   - errors: kafka.Error through errors.As.
//
// # Errors
//
// kafka.Error values are classified with polykafka.CodeForKafka;
// kafka.ErrGroupClosed, io.ErrClosedPipe and calls after Close are Closed;
// network errors and timeouts are Unavailable; a record sent to a partition
// the topic does not have is InvalidArgument.
//
// # Limitations
//
//   - No idempotent and no transactional producer: kafka-go has neither.
//     IdempotenceRequired and a TransactionalID fail OpenProducer with code
//     Unimplemented; with IdempotenceIfSupported the producer is not
//     idempotent (Idempotent reports false).
//   - kafka-go drops the error of the heartbeat that ends a generation
//     (consumergroup.go heartbeatLoop), so it cannot tell a lost
//     assignment from a revoked one. The adapter reads the error code of
//     each heartbeat response on the coordinator connections (lost.go):
//     UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION and FENCED_INSTANCE_ID call
//     Lost, anything else Revoked. A session that expires without an
//     answered heartbeat (a partitioned network) is reported as Revoked,
//     whose commits then fail.
//   - Producer Refresh does not refresh anything at once: kafka.Transport
//     has no refresh call, and serves metadata from a cache that expires
//     after MetadataTTL (1 s on the Transport the adapter builds). A record
//     sent with its own partition is checked against that cache.
//   - Flush sends nothing early: the Writer sends a batch when it is full or
//     its BatchTimeout (the portable Linger) expires.
//   - A reader fetches each partition with requests of its own, as group
//     members do: one connection per partition being fetched, no fetch
//     sessions (KIP-227).
//   - Writer.Close, ConsumerGroup.Close and kafka-go's JoinGroup take no
//     context; Close returns by its context's deadline, and anything kafka-go
//     still does then finishes in the background.
//   - kafka-go rejoins as soon as a generation ends, and backs off
//     JoinGroupBackoff (5 s by default) after a failed join.
//   - kafka-go's ConsumerGroup speaks old group protocol versions (JoinGroup
//     v1/v2, Heartbeat v0, SyncGroup v0): Apache Kafka 4.0.0 refused its
//     JoinGroup (kafka-go#1378, KIP-896); 4.0.1 and later accept it again
//     (KAFKA-19444).
package kafkago

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/errs"
)

// Options are kafka-go's native settings. A nil *Options means all
// defaults. The package doc's "# Configuration" section says which fields
// the adapter overrides.
type Options struct {
	// Dialer opens the connections of group consumers to their group
	// coordinator, and those of the metadata requests of consumers and
	// readers (partition counts). Nil means a dialer built from the
	// Connection (ClientID, TLS, SASL, a 10 s dial timeout).
	Dialer *kafka.Dialer
	// Transport carries the requests of the kafka.Client (commits, offset
	// fetches, offset listing) and of the producers' Writers; each
	// consumer's and reader's fetches go through a copy of it (its own
	// connections, no shared metadata cache). Nil means a kafka.Transport
	// built from the Connection (ClientID, TLS, SASL) with a MetadataTTL
	// of 1 s. A Transport of yours is shared by every client the backend
	// opens, except for those fetch copies.
	Transport *kafka.Transport
	// ConsumerGroup is the template of every consumer's group
	// configuration. The zero value means kafka-go's defaults.
	ConsumerGroup kafka.ConsumerGroupConfig
	// ReadBatch sets the size and wait of each partition's fetches. Zero
	// MinBytes means 1, zero MaxBytes 1 MiB, zero MaxWait 500 ms.
	ReadBatch kafka.ReadBatchConfig
	// ReadBackoffMin and ReadBackoffMax bound the wait of a partition's
	// fetch loop before it fetches again after an error (a jittered
	// exponential backoff), as kafka.ReaderConfig's fields of the same
	// names do for kafka.Reader. Zero means kafka-go's defaults, 100 ms and
	// 1 s.
	ReadBackoffMin, ReadBackoffMax time.Duration
	// ConfigureWriter, if not nil, is called with every producer's Writer
	// after the adapter has set it up and before its first use.
	ConfigureWriter func(*kafka.Writer)
	// MaxBufferedRecords bounds the records a producer holds undelivered:
	// a send waits for room (until its context ends) while it is reached.
	// kafka.Writer in Async mode buffers without bound. Zero means 10,000;
	// a negative value means no bound.
	MaxBufferedRecords int
	// Timeout bounds requests the adapter sends with the kafka.Client when
	// the caller's context has no deadline. Zero means 10 s.
	Timeout time.Duration
}

// Backend opens kafka-go consumers and producers. It implements
// driver.Backend; pass it to consumer.New and producer.New.
type Backend struct {
	conn polykafka.Connection
	opts Options
}

// New returns a backend on conn with the native settings in opts (nil
// means defaults). The Connection is validated when a client is opened.
func New(conn polykafka.Connection, opts *Options) *Backend {
	b := &Backend{conn: conn}
	if opts != nil {
		b.opts = *opts
	}
	if b.opts.Timeout <= 0 {
		b.opts.Timeout = 10 * time.Second
	}
	return b
}

// Name implements driver.Backend; it returns "kafkago".
func (*Backend) Name() string { return "kafkago" }

var _ driver.Backend = (*Backend)(nil)

// saslMechanism maps the portable SASL settings to kafka-go's.
func (b *Backend) saslMechanism() (sasl.Mechanism, error) {
	s := b.conn.SASL
	if s == nil {
		return nil, nil
	}
	switch s.Mechanism {
	case polykafka.SASLPlain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case polykafka.SASLScramSHA256:
		return scram.Mechanism(scram.SHA256, s.Username, s.Password)
	case polykafka.SASLScramSHA512:
		return scram.Mechanism(scram.SHA512, s.Username, s.Password)
	}
	return nil, polykafka.NewError(polykafka.InvalidArgument, "kafkago: New", fmt.Sprintf("Connection.SASL.Mechanism: unknown mechanism %q", string(s.Mechanism)), nil)
}

// natives returns the dialer and transport of a new client: the user's, or
// ones built from the Connection.
func (b *Backend) natives() (*kafka.Dialer, *kafka.Transport, error) {
	if err := b.conn.Validate(); err != nil {
		return nil, nil, err
	}
	mech, err := b.saslMechanism()
	if err != nil {
		return nil, nil, err
	}
	clientID := b.conn.ClientIDOr("polykafka")
	tlsCfg, err := b.conn.TLSConfig()
	if err != nil {
		return nil, nil, err
	}
	d := b.opts.Dialer
	if d == nil {
		d = &kafka.Dialer{ClientID: clientID, Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
	}
	t := b.opts.Transport
	if t == nil {
		t = b.newTransport(clientID, tlsCfg, mech)
	}
	return d, t, nil
}

// newTransport builds a transport from the Connection.
func (b *Backend) newTransport(clientID string, tlsCfg *tls.Config, mech sasl.Mechanism) *kafka.Transport {
	return &kafka.Transport{
		ClientID:    clientID,
		TLS:         tlsCfg,
		SASL:        mech,
		DialTimeout: 10 * time.Second,
		MetadataTTL: time.Second,
	}
}

// freshTransport returns a transport with no cached metadata, configured
// like t, for requests that must see partitions created moments ago
// (kafka.Transport routes by its metadata cache). The caller closes it
// with CloseIdleConnections.
func freshTransport(t *kafka.Transport) *kafka.Transport {
	return &kafka.Transport{
		Dial:           t.Dial,
		DialTimeout:    t.DialTimeout,
		IdleTimeout:    t.IdleTimeout,
		MetadataTTL:    t.MetadataTTL,
		MetadataTopics: t.MetadataTopics,
		ClientID:       t.ClientID,
		TLS:            t.TLS,
		SASL:           t.SASL,
		Resolver:       t.Resolver,
		Context:        t.Context,
	}
}

// addr is the cluster address of a kafka.Client.
func (b *Backend) addr() net.Addr { return kafka.TCP(b.conn.Brokers...) }

// errClosed is returned by calls after Close.
var errClosed = errors.New("kafkago: closed")

// errInvalidPartition is reported for a record sent to a partition that its
// topic does not have.
var errInvalidPartition = errors.New("kafkago: the record's partition does not exist")

// errorCode is the classification shared by the consumer and the producer.
func errorCode(err error) polykafka.ErrorCode {
	var ke kafka.Error
	var pe *polykafka.Error
	var tooLarge kafka.MessageTooLargeError
	switch {
	case err == nil:
		return polykafka.OK
	case errors.As(err, &pe):
		return pe.Code
	case errors.As(err, &ke):
		return polykafka.CodeForKafka(int16(ke))
	case errors.Is(err, errClosed), errors.Is(err, kafka.ErrGroupClosed), errors.Is(err, io.ErrClosedPipe):
		return polykafka.Closed
	case errors.Is(err, errInvalidPartition), errors.As(err, &tooLarge):
		return polykafka.InvalidArgument
	case errs.Transport(err):
		return polykafka.Unavailable
	}
	return polykafka.Unknown
}

// kafkaLogger bridges kafka-go's Logger to slog at one level. kafka-go logs
// its routine work (joins, fetch loops) through Logger: that goes to debug;
// ErrorLogger goes to warn, since kafka-go reports there what it retries.
type kafkaLogger struct {
	l     *slog.Logger
	level slog.Level
}

// Printf implements kafka.Logger.
func (k kafkaLogger) Printf(format string, args ...any) {
	ctx := context.Background()
	if !k.l.Enabled(ctx, k.level) {
		return
	}
	k.l.Log(ctx, k.level, "kafka-go: "+strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func loggers(l *slog.Logger) (info, errs kafka.Logger) {
	return kafkaLogger{l, slog.LevelDebug}, kafkaLogger{l, slog.LevelWarn}
}

// opCtx bounds ctx with the backend's Timeout when it has no deadline.
func (b *Backend) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, b.opts.Timeout)
}

// dialAny connects to the first reachable seed broker.
func dialAny(ctx context.Context, d *kafka.Dialer, brokers []string) (*kafka.Conn, error) {
	var err error
	for _, addr := range brokers {
		var c *kafka.Conn
		if c, err = d.DialContext(ctx, "tcp", addr); err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, err
}

// withConnCtx runs f on c and makes c's blocking calls return when ctx is
// done (kafka.Conn takes deadlines, not contexts); it then returns ctx's
// error.
func withConnCtx(ctx context.Context, c *kafka.Conn, f func() error) error {
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err := f()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// partitionCounts reads the partition count of each topic with a metadata
// request on a new connection (kafka.Conn.ReadPartitions has no cache).
func partitionCounts(ctx context.Context, d *kafka.Dialer, brokers []string, topics []string) (map[string]int32, error) {
	c, err := dialAny(ctx, d, brokers)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := make(map[string]int32, len(topics))
	err = withConnCtx(ctx, c, func() error {
		// One topic per request, so that an error names its topic.
		for _, t := range topics {
			parts, err := c.ReadPartitions(t)
			if err != nil {
				return fmt.Errorf("topic %q: %w", t, err)
			}
			for _, p := range parts {
				if n := int32(p.ID) + 1; p.Topic == t && n > out[t] {
					out[t] = n
				}
			}
			if out[t] == 0 {
				return fmt.Errorf("topic %q: %w", t, kafka.UnknownTopicOrPartition)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
