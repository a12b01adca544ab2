package franz

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

type producer struct {
	cl        *kgo.Client
	cur       atomic.Pointer[chunk] // where the next pendings come from
	delivered func(*polykafka.Record, error, func(*polykafka.Record, error))
	idem      bool
	txID      string
	txn       txnState
}

// chunk is pendingChunk pendings allocated at once, handed out by an atomic
// index: the record path allocates 1/pendingChunk objects per record
// instead of one, with one atomic add. A chunk stays in memory until every
// record in it is done.
type chunk struct {
	next atomic.Int64
	ps   [pendingChunk]pending
}

const pendingChunk = 256

var (
	_ driver.Producer   = (*producer)(nil)
	_ driver.Transactor = (*producer)(nil)
)

var errInvalidPartition = errors.New("record partition out of range")

// OpenProducer implements driver.Backend.
func (b *Backend) OpenProducer(_ context.Context, cfg driver.ProducerConfig) (driver.Producer, error) {
	const op = "franz: OpenProducer"
	base, err := b.clientOpts(true)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.WithLogger(slogLogger{cfg.Logger}),
		kgo.RecordPartitioner(recordPartitioner{kgo.UniformBytesPartitioner(64<<10, true, true, nil)}),
		kgo.ProducerLinger(cfg.Linger),
	}
	opts = append(opts, base...)
	switch cfg.Acks {
	case -1:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case 1:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case 0:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	default:
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, fmt.Sprintf("acks %d", cfg.Acks), nil)
	}
	idem := cfg.Idempotence != driver.IdempotenceOff
	if !idem {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if cfg.TransactionalID != "" {
		opts = append(opts, kgo.TransactionalID(cfg.TransactionalID))
	}
	switch cfg.Compression {
	case "none", "":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "compression "+cfg.Compression, nil)
	}
	if cfg.BatchBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(cfg.BatchBytes))
	}
	// Native producer options last: they win.
	for _, o := range b.opts {
		if _, ok := o.(kgo.ProducerOpt); ok {
			opts = append(opts, o)
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "", err)
	}
	return &producer{cl: cl, delivered: cfg.Delivered, idem: idem, txID: cfg.TransactionalID}, nil
}

// pending is one record in flight: the kgo.Record handed to kgo and what
// the promise needs. The record's Context is the pending's own pendingCtx
// (a pointer into the same allocation, so no allocation of its own), which
// carries the Produce context for kgo's cancellation and lets the promise
// and the partitioner find the pending without a closure per record, and
// tell the adapter's records from records produced natively through As.
type pending struct {
	kr           kgo.Record
	ctx          pendingCtx
	p            *producer
	rec          *polykafka.Record
	done         func(*polykafka.Record, error)
	badPartition bool
}

// pendingCtx is the context of an adapter-produced record: the Produce
// context, plus the way back to the pending.
type pendingCtx struct {
	context.Context
	pd *pending
}

// pendingOf returns the pending of a record the adapter produced, or nil
// for any other record (one produced natively on the client from As).
func pendingOf(kr *kgo.Record) *pending {
	if pc, ok := kr.Context.(*pendingCtx); ok {
		return pc.pd
	}
	return nil
}

func (p *producer) alloc() *pending {
	for {
		c := p.cur.Load()
		if c != nil {
			if i := c.next.Add(1) - 1; i < pendingChunk {
				return &c.ps[i]
			}
		}
		nc := new(chunk)
		nc.next.Store(1)
		if p.cur.CompareAndSwap(c, nc) {
			return &nc.ps[0]
		}
	}
}

// Produce implements driver.Producer.
func (p *producer) Produce(ctx context.Context, r *polykafka.Record, done func(*polykafka.Record, error)) {
	pd := p.alloc()
	pd.p, pd.rec, pd.done = p, r, done
	pd.ctx = pendingCtx{Context: ctx, pd: pd}
	pd.kr = kgo.Record{
		Topic:     r.Topic,
		Partition: r.Partition,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   toKgoHeaders(r.Headers),
		Timestamp: r.Timestamp,
		Context:   &pd.ctx,
	}
	p.cl.Produce(ctx, &pd.kr, promise)
}

func promise(kr *kgo.Record, err error) {
	pd := pendingOf(kr)
	p, r, done := pd.p, pd.rec, pd.done
	switch {
	case err == nil:
		r.Partition, r.Offset, r.Timestamp = kr.Partition, kr.Offset, kr.Timestamp
		if p.txID != "" {
			p.txn.produced.Store(true)
		}
	case pd.badPartition:
		err = fmt.Errorf("%w: record Partition %d: %v", errInvalidPartition, kr.Partition, err)
	}
	// Drop the application's record and callback. The kgo.Record itself is
	// left alone: kgo may still read it (its Context, from a goroutine
	// waiting on the topic's metadata) after the promise; chunks are never
	// reused, so it is freed with its chunk.
	pd.rec, pd.done, pd.p = nil, nil, nil
	p.delivered(r, err, done)
}

func toKgoHeaders(hs []polykafka.Header) []kgo.RecordHeader {
	if len(hs) == 0 {
		return nil
	}
	out := make([]kgo.RecordHeader, len(hs))
	for i, h := range hs {
		out[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
	}
	return out
}

// Flush implements driver.Producer.
func (p *producer) Flush(ctx context.Context) error { return p.cl.Flush(ctx) }

// PartitionCounts implements driver.Producer.
func (p *producer) PartitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	return partitionCounts(ctx, p.cl, topics)
}

// Refresh implements driver.Producer: kgo's partitioner reads the
// client's metadata, which this refreshes now.
func (p *producer) Refresh(context.Context, map[string]int32) error {
	p.cl.ForceMetadataRefresh()
	return nil
}

// Idempotent implements driver.Producer.
func (p *producer) Idempotent() bool { return p.idem }

// Close implements driver.Producer: kgo fails what is still buffered and
// calls those promises (hence Delivered) from its own goroutines.
func (p *producer) Close(context.Context) error {
	p.cl.Close()
	return nil
}

// As implements driver.Producer.
func (p *producer) As(target any) bool {
	if t, ok := target.(**kgo.Client); ok && t != nil {
		*t = p.cl
		return true
	}
	return false
}

// ErrorCode implements driver.Producer.
func (*producer) ErrorCode(err error) polykafka.ErrorCode { return errorCode(err) }

// recordPartitioner honours a record's own partition (>= 0) and otherwise
// defers to the wrapped partitioner. The per-topic wrapper implements kgo's
// optional partitioner interfaces only where the wrapped one does: kgo
// changes its batching when a partitioner has OnNewBatch (KIP-480), so
// advertising one the wrapped partitioner lacks would change behaviour.
type recordPartitioner struct{ inner kgo.Partitioner }

func (rp recordPartitioner) ForTopic(t string) kgo.TopicPartitioner {
	inner := rp.inner.ForTopic(t)
	base := recordTP{inner: inner}
	b, isBackup := inner.(kgo.TopicBackupPartitioner)
	nb, isNewBatch := inner.(kgo.TopicPartitionerOnNewBatch)
	switch {
	case isBackup && isNewBatch:
		return &backupNewBatchTP{backupTP{base, b}, nb}
	case isBackup:
		return &backupTP{base, b}
	case isNewBatch:
		return &newBatchTP{base, nb}
	}
	return &base
}

type recordTP struct{ inner kgo.TopicPartitioner }

func (tp *recordTP) RequiresConsistency(r *kgo.Record) bool {
	return ownPartition(r) || tp.inner.RequiresConsistency(r)
}

func (tp *recordTP) Partition(r *kgo.Record, n int) int {
	if ownPartition(r) {
		return own(r, n)
	}
	return tp.inner.Partition(r, n)
}

type backupTP struct {
	recordTP
	b kgo.TopicBackupPartitioner
}

func (tp *backupTP) PartitionByBackup(r *kgo.Record, n int, it kgo.TopicBackupIter) int {
	if ownPartition(r) {
		return own(r, n)
	}
	return tp.b.PartitionByBackup(r, n, it)
}

type newBatchTP struct {
	recordTP
	nb kgo.TopicPartitionerOnNewBatch
}

func (tp *newBatchTP) OnNewBatch() { tp.nb.OnNewBatch() }

type backupNewBatchTP struct {
	backupTP
	nb kgo.TopicPartitionerOnNewBatch
}

func (tp *backupNewBatchTP) OnNewBatch() { tp.nb.OnNewBatch() }

// ownPartition reports whether r is an adapter record that names its own
// partition. Records produced natively on the client (through As) keep
// kgo's semantics: the wrapped partitioner decides.
func ownPartition(r *kgo.Record) bool {
	return r.Partition >= 0 && pendingOf(r) != nil
}

// own returns the record's partition; kgo fails the record if it is out of
// range, and the promise then reports InvalidArgument.
func own(r *kgo.Record, n int) int {
	if int(r.Partition) >= n {
		pendingOf(r).badPartition = true
	}
	return int(r.Partition)
}
