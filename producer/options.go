package producer

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/polykafka/polykafka/adapters/driver"
)

// Acks is how many replicas must acknowledge a record before it counts as
// sent.
type Acks int

const (
	// AcksAll (the default) waits for every in-sync replica.
	AcksAll Acks = iota
	// AcksLeader waits for the partition leader only.
	AcksLeader
	// AcksNone does not wait: a record counts as sent once written to the
	// socket. Its offset is unknown (-1).
	AcksNone
)

// Compression is a batch compression codec (the driver's type, so that
// the codec names are defined once).
type Compression = driver.Compression

// Compression codecs. The zero value is CompressionNone.
const (
	CompressionNone   = driver.CompressionNone
	CompressionGzip   = driver.CompressionGzip
	CompressionSnappy = driver.CompressionSnappy
	CompressionLZ4    = driver.CompressionLZ4
	CompressionZstd   = driver.CompressionZstd
)

// Options configure a Producer. A nil *Options means all defaults; every
// field's zero value is a documented default. Native options given to the
// adapter's constructor are applied after these, so they win.
type Options struct {
	// Acks is the acknowledgement level. Zero means AcksAll.
	Acks Acks
	// Idempotence says whether the producer must be idempotent (retries
	// never write a record twice, nor out of order). Zero means
	// IdempotenceAuto.
	Idempotence Idempotence
	// TransactionalID makes the producer transactional with this id (see
	// BeginTransaction); it implies IdempotenceRequired. Empty means no
	// transactions. A backend without transactions fails New with code
	// Unimplemented.
	TransactionalID string
	// Compression is the batch compression. Zero means none.
	Compression Compression
	// Linger is how long a batch may wait for more records before it is
	// sent. Zero means records are sent as soon as a request can be.
	Linger time.Duration
	// BatchBytes caps the size of one batch in bytes. Zero means the
	// backend's default (1 MB on franz-go).
	BatchBytes int32
	// RecordPartition makes the producer honour Record.Partition: a record
	// with Partition >= 0 is written to that partition, one with
	// AnyPartition goes through the key partitioner. False (the default)
	// ignores Record.Partition and always uses the key partitioner: the
	// Java-compatible murmur2 hash of the key, so a key lands on the same
	// partition from every backend and from Java clients.
	RecordPartition bool
	// DiscoveryInterval is how often the partition counts of the topics
	// written to are polled, so that when a topic grows the client's
	// partitioner uses the new count (and every backend places keys the
	// same way) within about one interval. Zero means
	// discovery.DefaultInterval (5s); negative disables polling (the
	// client's own metadata refresh then decides, minutes by default).
	DiscoveryInterval time.Duration
	// DeliveryTimeout is Kafka's delivery.timeout.ms: how long the backend
	// keeps retrying a record (leader moved, broker unreachable, request
	// timed out) before its callback gets an error, counted from SendAsync.
	// A record is acknowledged or failed within about DeliveryTimeout (plus
	// one request timeout or backoff step) on every backend; see the
	// README's "Delivery timeout" section for how each client is
	// configured from it. An outage shorter than DeliveryTimeout fails no
	// record. Where the client gives up on a record before the timeout
	// whatever its settings (sarama, when it cannot find a leader), the
	// producer itself produces a record that failed as Unavailable again,
	// after the client's retry backoff, until the timeout: such a record
	// may land after records sent after it. A record that times out fails with code Unavailable. Zero
	// means DefaultDeliveryTimeout (2 minutes, as Java's producer); it must
	// be longer than Linger.
	DeliveryTimeout time.Duration
	// CloseTimeout bounds Close: records not delivered by then fail with an
	// error. Zero means 30s.
	CloseTimeout time.Duration
	// Logger receives the producer's logs. Nil discards.
	Logger *slog.Logger
	// Hooks are values implementing one or more of the Hook interfaces of
	// this package (HookSend). Values that implement none are rejected by
	// New. Nil means none: the send path then costs nothing for hooks.
	Hooks []any
}

// Idempotence is the idempotence requirement of a Producer (the driver's
// type, so that the values are defined once).
type Idempotence = driver.Idempotence

const (
	// IdempotenceAuto (the default): idempotent with AcksAll on backends
	// that have an idempotent producer, and not otherwise (logged at info
	// level by New; see Producer.Idempotent).
	IdempotenceAuto = driver.IdempotenceAuto
	// IdempotenceRequired: New fails with code Unimplemented on a backend
	// without an idempotent producer, and with InvalidArgument unless Acks
	// is AcksAll.
	IdempotenceRequired = driver.IdempotenceRequired
	// IdempotenceOff: never idempotent.
	IdempotenceOff = driver.IdempotenceOff
)

// DefaultDeliveryTimeout is the DeliveryTimeout of a zero Options: 2
// minutes, Java's delivery.timeout.ms default. (Extended by Linger when
// Linger is set, so that a batch may wait and still be retried.)
const DefaultDeliveryTimeout = 2 * time.Minute

type settings struct {
	Options
}

func (o *Options) settings() (settings, error) {
	var s settings
	if o != nil {
		s.Options = *o
	}
	switch {
	case s.Acks < AcksAll || s.Acks > AcksNone:
		return s, fmt.Errorf("Options.Acks: unknown value %d", s.Acks)
	case s.Linger < 0:
		return s, fmt.Errorf("Options.Linger: %v is negative", s.Linger)
	case s.BatchBytes < 0:
		return s, fmt.Errorf("Options.BatchBytes: %d is negative", s.BatchBytes)
	case s.DeliveryTimeout < 0:
		return s, fmt.Errorf("Options.DeliveryTimeout: %v is negative", s.DeliveryTimeout)
	case s.DeliveryTimeout > 0 && s.DeliveryTimeout <= s.Linger:
		return s, fmt.Errorf("Options.DeliveryTimeout: %v is not longer than Linger (%v)", s.DeliveryTimeout, s.Linger)
	case s.CloseTimeout < 0:
		return s, fmt.Errorf("Options.CloseTimeout: %v is negative", s.CloseTimeout)
	case s.Idempotence < IdempotenceAuto || s.Idempotence > IdempotenceOff:
		return s, fmt.Errorf("Options.Idempotence: unknown value %d", s.Idempotence)
	case s.Idempotence == IdempotenceRequired && s.Acks != AcksAll:
		return s, fmt.Errorf("Options.Idempotence: required, but an idempotent producer needs Acks = AcksAll")
	case s.TransactionalID != "" && s.Acks != AcksAll:
		return s, fmt.Errorf("Options.TransactionalID: a transactional producer needs Acks = AcksAll")
	case s.TransactionalID != "" && s.Idempotence == IdempotenceOff:
		return s, fmt.Errorf("Options.TransactionalID: a transactional producer is idempotent; Idempotence is IdempotenceOff")
	}
	switch s.Compression {
	case CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd:
	default:
		return s, fmt.Errorf("Options.Compression: unknown codec %q (want gzip, snappy, lz4, zstd or empty)", string(s.Compression))
	}
	for i, h := range s.Hooks {
		if !isHook(h) {
			return s, fmt.Errorf("Options.Hooks[%d]: %T implements no producer hook interface", i, h)
		}
	}
	if s.DiscoveryInterval == 0 {
		s.DiscoveryInterval = 5 * time.Second
	}
	if s.DeliveryTimeout == 0 {
		s.DeliveryTimeout = max(DefaultDeliveryTimeout, s.Linger+DefaultDeliveryTimeout)
	}
	if s.CloseTimeout == 0 {
		s.CloseTimeout = 30 * time.Second
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}
