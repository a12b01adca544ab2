// Package polysarama is the polykafka backend for github.com/IBM/sarama.
// Its directory is adapters/sarama; the package is named polysarama so that
// it never clashes with package sarama, which a user imports beside it.
//
//	b := polysarama.New(polykafka.Connection{Brokers: []string{"localhost:9092"}}, nil)
//	c, err := consumer.New(ctx, b, "billing", []string{"orders"}, nil)
//	p, err := producer.New(ctx, b, nil)
//
// # Configuration
//
// [New] takes the portable [polykafka.Connection] and a native
// *sarama.Config (nil means sarama.NewConfig() with Version set to
// [DefaultVersion], see below). The Config is copied when a client opens; the
// caller's value is never modified.
//
// From the Connection: ClientID replaces Config.ClientID only if the latter
// is still sarama's default ("sarama"); TLS sets Net.TLS unless Net.TLS.Enable
// is already set; SASL sets Net.SASL (PLAIN, or SCRAM-SHA-256/512 through a
// built-in SCRAM client) unless Net.SASL.Enable is already set. Brokers come
// from the Connection only.
//
// Version: the default is sarama.V2_3_0_0 (see [DefaultVersion]), which
// Kafka 2.3 through 4.x and the in-process kfake cluster all speak. Kafka 4
// accepts nothing older than the 2.1 protocol (KIP-896); 2.2 brings the
// two-step JoinGroup of KIP-394 and 2.3 static membership. sarama's own
// default (2.8) makes older 2.x brokers reject its requests. Set
// Config.Version to your cluster's version to use newer features (KIP-447
// fencing of transactional offset commits needs 2.5), or to 2.1 or 2.2 for
// those clusters.
//
// Consumers use sarama's ConsumerGroup for membership (join, sync,
// heartbeats, leave) and a second sarama.Consumer on a client of its own
// for records (sarama holds a broker connection for a whole request, so a
// fetch waiting Consumer.MaxWaitTime would hold up the group's commits and
// LeaveGroup): each assigned partition gets a partition consumer started
// exactly at the offset the portable layer decided, which the adapter can
// restart (Seek, Pause/Resume), and which a session's end closes without
// waiting for its fetch in flight. The group session's own claims are
// paused at once and never read. Consumers override, whatever the Config says,
// because polykafka's guarantees depend on them:
//
//   - Consumer.Offsets.AutoCommit.Enable = false: every commit is made by the
//     portable layer through an OffsetCommit request carrying its metadata,
//     so sarama's offset managers never write (they would erase the baseline
//     in the commit metadata).
//   - Consumer.Offsets.Initial = sarama.OffsetNewest and
//     Consumer.Group.ResetInvalidOffsets = true: these only place the
//     session's unused claims (where reading them costs least, and so that
//     an invalid commit never fails a session); no record is ever read from
//     a position they chose.
//   - Consumer.Return.Errors = true: errors reach Fetch.
//   - Consumer.Group.Rebalance.GroupStrategies = the eager "range" strategy
//     wrapped (see "Group protocol"), Consumer.Group.Rebalance.Strategy = nil.
//   - Consumer.IsolationLevel from consumer.Options.
//   - Net.Proxy.Enable = true with a Net.Proxy.Dialer of the adapter's, on
//     the group's client only, over yours if you set one (else a
//     net.Dialer with your Net settings): Close cuts its connections when
//     it finds the member joining, which sarama would otherwise wait for
//     (leave.go).
//
// Readers (consumer.NewReader, consumption without a group) are a sarama
// client and a sarama.Consumer with no ConsumerGroup: each partition the
// portable layer assigns gets the same partition consumer as a group
// member's, started exactly at the portable layer's offset and restarted
// there when it is assigned again (a partition out of range is reported
// once and not fetched until then). They set Consumer.Return.Errors = true
// and Consumer.IsolationLevel from consumer.Options; Consumer.Offsets and
// Consumer.Group are unused.
//
// Consumers and producers set Metadata.Full = false if it has its default
// (true): a client needs the metadata of its own topics only, and creating
// it then needs no reachable broker.
//
// Producers: the portable producer options set RequiredAcks, Idempotent
// (with Net.MaxOpenRequests = 1, which sarama requires for it),
// Compression, Flush.Frequency (Linger) and Flush.Bytes (BatchBytes) only
// where the Config still has sarama.NewConfig()'s value: a field you changed
// wins. Always set: Producer.Return.Successes and Producer.Return.Errors
// (the adapter drains both), Producer.Partitioner (Java-compatible murmur2,
// sarama.NewMurmur2Partitioner, which also honours a record's own partition
// when the producer allows it) and, for a transactional producer,
// Producer.Transaction.ID.
//
// # Group protocol
//
// Consumers join with the "range" protocol, the one all four polykafka
// backends implement, so that members on different backends can share a
// group. The strategy puts the partition counts the member last saw in its
// JoinGroup user data (sarama's SubscriptionUserDataBalanceStrategy), so a
// member that notices new partitions makes the group rebalance even when it
// is not the leader; when this member leads, it refreshes its metadata until
// it sees every partition any member reported before it plans.
//
// # As
//
//   - Consumer.As: *sarama.Client, *sarama.ConsumerGroup, and
//     *sarama.ConsumerGroupSession (the current session; false between
//     sessions).
//   - Producer.As: *sarama.Client, *sarama.AsyncProducer.
//   - a reader's As (consumer.NewReader): *sarama.Client and
//     *sarama.Consumer (its partition consumers are the adapter's: do not
//     start or close any on it).
//   - Record.Native: *sarama.ConsumerMessage.
//   - errors: sarama.KError, *sarama.ConsumerError and sarama's sentinel
//     errors, through errors.As and errors.Is.
//
// Records produced directly on the AsyncProducer obtained through As are
// sent, but their results are drained by the adapter (errors are logged):
// do not read Successes or Errors yourself.
//
// # Errors
//
// Kafka protocol errors (sarama.KError) are classified with
// polykafka.CodeForKafka; SASL_AUTHENTICATION_FAILED, which sarama wraps
// with the broker's message so that only errors.Is finds it, is
// PermissionDenied. sarama.ErrClosedClient, ErrClosedConsumerGroup and
// ErrShuttingDown are Closed; ErrOutOfBrokers, ErrNotConnected and network
// errors are Unavailable; sarama.ConfigurationError and ErrInvalidPartition
// are InvalidArgument.
//
// # Logging
//
// sarama logs through one package-level variable, sarama.Logger, shared by
// every sarama client in the process. The first client this package opens
// replaces it with a bridge, if and only if it still holds sarama's default
// (a logger writing to io.Discard): the bridge sends each sarama line, at
// debug level, to the slog.Logger of every polykafka sarama client open at
// that moment (sarama's lines do not say which client wrote them). If you
// set sarama.Logger yourself, it is left alone and sarama's lines go there.
// Set it, if you do, before opening any client: sarama reads the variable
// without synchronisation.
//
// # Limitations
//
//   - sarama starts a claim for every assigned partition, at its offset
//     manager's position, before the adapter can pause it: each session may
//     fetch one batch per partition that is never read.
//   - sarama cannot tell a lost assignment from a revoked one; the adapter
//     calls Lost when the session ended because the coordinator refused
//     the member or generation (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
//     FENCED_INSTANCE_ID) or heartbeats failed, and Revoked otherwise.
//   - A sarama partition consumer cannot be moved: a reader restarts a
//     partition (Assign of one already read, Pause, Resume) by closing its
//     partition consumer and starting another: what the old one had
//     fetched but Fetch had not returned is dropped, and fetched again
//     where the new position precedes it. Assign starts
//     partition consumers in the background, so an offset already out of
//     range is reported by a later Fetch, not by Assign.
//   - Rejoin ends the current session; with the eager protocol every
//     member then gives up all its partitions until the new generation.
//   - An idempotent sarama producer sends InitProducerId when it is
//     created, so the adapter creates it in the background: opening a
//     producer needs no broker, a Produce waits for it (within its
//     context), a failed creation is tried again by the next Produce, and
//     Producer.As(*sarama.AsyncProducer) waits for it.
//   - Flush does nothing: sarama sends what it buffers within
//     Producer.Flush.Frequency (Linger) on its own.
//   - A producer's Close waits for sarama to send what it still buffers; if
//     ctx ends first, the records still in flight are failed by the adapter
//     (code Closed) and the client is closed under them.
package polysarama

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"github.com/IBM/sarama"
	"github.com/eapache/go-resiliency/breaker"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/internal/errs"
)

// DefaultVersion is the Kafka protocol version the backend assumes when
// New is given a nil Config: sarama.V2_3_0_0 (see the package doc).
var DefaultVersion = sarama.V2_3_0_0

// Backend opens sarama consumers and producers. It implements
// driver.Backend; pass it to consumer.New and producer.New.
type Backend struct {
	conn polykafka.Connection
	cfg  *sarama.Config // never modified; copied by each client
}

var _ driver.Backend = (*Backend)(nil)

// New returns a backend that connects with conn and configures its sarama
// clients from cfg (nil means sarama.NewConfig() with Version
// DefaultVersion). The package doc lists what the adapter sets on top of
// cfg. Invalid settings are reported when a consumer or producer opens.
func New(conn polykafka.Connection, cfg *sarama.Config) *Backend {
	if cfg == nil {
		cfg = sarama.NewConfig()
		cfg.Version = DefaultVersion
	}
	return &Backend{conn: conn, cfg: cfg}
}

// Name implements driver.Backend.
func (*Backend) Name() string { return "sarama" }

// config returns a copy of the backend's Config with the connection applied.
func (b *Backend) config() (*sarama.Config, error) {
	if err := b.conn.Validate(); err != nil {
		return nil, err
	}
	cfg := *b.cfg
	def := sarama.NewConfig()
	if cfg.ClientID == def.ClientID {
		cfg.ClientID = b.conn.ClientIDOr("polykafka")
	}
	tlsCfg, err := b.conn.TLSConfig()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil && !cfg.Net.TLS.Enable {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tlsCfg
	}
	if s := b.conn.SASL; s != nil && !cfg.Net.SASL.Enable {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.User = s.Username
		cfg.Net.SASL.Password = s.Password
		switch s.Mechanism {
		case polykafka.SASLPlain:
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case polykafka.SASLScramSHA256:
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(sha256Hash) }
		case polykafka.SASLScramSHA512:
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(sha512Hash) }
		}
	}
	return &cfg, nil
}

// newClient creates a sarama client within ctx's deadline. sarama.NewClient
// takes no context: if ctx ends first, the client is closed as soon as
// NewClient returns, in the background.
func (b *Backend) newClient(ctx context.Context, op string, cfg *sarama.Config) (sarama.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "", err)
	}
	type result struct {
		cl  sarama.Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		cl, err := sarama.NewClient(b.conn.Brokers, cfg)
		ch <- result{cl, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, polykafka.NewError(errorCode(r.err), op, "", r.err)
		}
		return r.cl, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.cl != nil {
				_ = r.cl.Close()
			}
		}()
		return nil, deadlineError(op, ctx.Err())
	}
}

// deadlineError is the error of an open whose context ended while it waited
// for a broker: Unavailable for an expired deadline (still
// errors.Is(err, context.DeadlineExceeded)), context.Canceled as it is.
func deadlineError(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return &polykafka.Error{Code: polykafka.Unavailable, Op: op, Msg: "no broker answered before the deadline", Err: err}
	}
	return err
}

// errClosed is returned by calls on a closed consumer or producer.
var errClosed = errors.New("sarama: closed")

// errUnimplemented marks what sarama cannot do.
var errUnimplemented = errors.New("sarama: not supported by sarama")

// errorCode is the classification shared by the consumer and the producer.
func errorCode(err error) polykafka.ErrorCode {
	var ke sarama.KError
	var ce sarama.ConfigurationError
	switch {
	case err == nil:
		return polykafka.OK
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		// sarama wraps it (sarama.Wrap) in an error that errors.Is
		// finds but errors.As does not, with the broker's message.
		return polykafka.PermissionDenied
	case errors.As(err, &ke):
		return polykafka.CodeForKafka(int16(ke))
	case errors.Is(err, errClosed), errors.Is(err, sarama.ErrClosedClient),
		errors.Is(err, sarama.ErrClosedConsumerGroup), errors.Is(err, sarama.ErrShuttingDown):
		return polykafka.Closed
	case errors.Is(err, errUnimplemented):
		return polykafka.Unimplemented
	case errors.As(err, &ce), errors.Is(err, sarama.ErrInvalidPartition), errors.Is(err, sarama.ErrInvalidTopic):
		return polykafka.InvalidArgument
	case errors.Is(err, sarama.ErrOutOfBrokers), errors.Is(err, sarama.ErrNotConnected),
		errors.Is(err, sarama.ErrIncompleteResponse), errors.Is(err, sarama.ErrControllerNotAvailable),
		errs.Transport(err), errors.Is(err, breaker.ErrBreakerOpen):
		// breaker.ErrBreakerOpen: sarama's producer stops looking up a
		// partition's leader for 10s after 3 failed lookups (an outage)
		// and fails records at once meanwhile.
		return polykafka.Unavailable
	}
	return polykafka.Unknown
}

// inflight runs the blocking sarama calls that take no context, so that the
// adapter's methods return when their ctx ends; the call itself finishes in
// the background (sarama bounds every request by its Net timeouts, and
// closing the client fails the ones in flight). Close waits for them.
type inflight struct{ wg sync.WaitGroup }

// do runs fn and returns its error, or ctx's error if ctx ends first.
func (f *inflight) do(ctx context.Context, fn func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch := make(chan error, 1)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		ch <- fn()
	}()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait waits for the calls in flight, until ctx ends.
func (f *inflight) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		f.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// send sends req to br with fn (one of br's request methods). sarama's
// Broker.Open marks the broker opened, then validates the config, and only
// then takes the lock under which it connects (broker.go Open). The
// client opens brokers on use (LeastLoadedBroker, Leader, Coordinator), so
// a request racing another goroutine's first Open of the same broker can
// take the lock first and fail with ErrNotConnected although the
// connection is on its way. send then waits for that Open (Connected takes
// the lock it holds while connecting) and sends once more.
func send[Req, Resp any](br *sarama.Broker, fn func(Req) (Resp, error), req Req) (Resp, error) {
	resp, err := fn(req)
	if !errors.Is(err, sarama.ErrNotConnected) {
		return resp, err
	}
	// The racing Open is between its flag and its lock for the time of a
	// Config.Validate: yield until it holds the lock and has connected, or
	// failed, or turns out not to exist.
	for range 1000 {
		ok, cerr := br.Connected()
		if ok {
			return fn(req)
		}
		if cerr != nil {
			return resp, cerr
		}
		runtime.Gosched()
	}
	return resp, err
}

// warmUp connects the broker the client will use first before anything
// else uses the client, so that no two goroutines race to open it (see
// send). It waits within ctx; a broker that cannot be reached is left for
// the first real request to report.
func warmUp(ctx context.Context, f *inflight, cl sarama.Client) error {
	return f.do(ctx, func() error {
		if br := cl.LeastLoadedBroker(); br != nil {
			_, _ = br.Connected()
		}
		return nil
	})
}
