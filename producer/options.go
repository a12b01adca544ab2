package producer

import (
	"fmt"
	"log/slog"
	"time"
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

// Compression is a batch compression codec.
type Compression string

// Compression codecs. The zero value is CompressionNone.
const (
	CompressionNone   Compression = ""
	CompressionGzip   Compression = "gzip"
	CompressionSnappy Compression = "snappy"
	CompressionLZ4    Compression = "lz4"
	CompressionZstd   Compression = "zstd"
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
	// CloseTimeout bounds Close: records not delivered by then fail with an
	// error. Zero means 30s.
	CloseTimeout time.Duration
	// Logger receives the producer's logs. Nil discards.
	Logger *slog.Logger
}

// Idempotence is the idempotence requirement of a Producer.
type Idempotence int

const (
	// IdempotenceAuto (the default): idempotent with AcksAll on backends
	// that have an idempotent producer, and not otherwise (logged at info
	// level by New; see Producer.Idempotent).
	IdempotenceAuto Idempotence = iota
	// IdempotenceRequired: New fails with code Unimplemented on a backend
	// without an idempotent producer, and with InvalidArgument unless Acks
	// is AcksAll.
	IdempotenceRequired
	// IdempotenceOff: never idempotent.
	IdempotenceOff
)

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
	if s.DiscoveryInterval == 0 {
		s.DiscoveryInterval = 5 * time.Second
	}
	if s.CloseTimeout == 0 {
		s.CloseTimeout = 30 * time.Second
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}
