package franz

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

type producer struct {
	cl *kgo.Client
}

var _ driver.Producer = (*producer)(nil)

var errInvalidPartition = errors.New("record partition out of range")

// OpenProducer implements driver.Backend.
func (b *Backend) OpenProducer(_ context.Context, cfg driver.ProducerConfig) (driver.Producer, error) {
	opts := []kgo.Opt{
		kgo.WithLogger(slogLogger{cfg.Logger}),
		kgo.RecordPartitioner(recordPartitioner{kgo.UniformBytesPartitioner(64<<10, true, true, nil)}),
		kgo.ProducerLinger(cfg.Linger),
	}
	switch cfg.Acks {
	case -1:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case 1:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case 0:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	default:
		return nil, polykafka.NewError(polykafka.InvalidArgument, "franz: OpenProducer", fmt.Sprintf("acks %d", cfg.Acks), nil)
	}
	if !cfg.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
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
		return nil, polykafka.NewError(polykafka.InvalidArgument, "franz: OpenProducer", "compression "+cfg.Compression, nil)
	}
	if cfg.BatchBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(cfg.BatchBytes))
	}
	opts = append(opts, b.opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, "franz: OpenProducer", "", err)
	}
	return &producer{cl: cl}, nil
}

// pending is one record in flight. kr is its first field, so the promise
// can recover the pending from the *kgo.Record kgo hands back (the only
// per-record allocation of the adapter: no closure per record).
type pending struct {
	kr           kgo.Record
	rec          *polykafka.Record
	done         func(*polykafka.Record, error)
	badPartition bool
}

func pendingOf(kr *kgo.Record) *pending { return (*pending)(unsafe.Pointer(kr)) }

// Produce implements driver.Producer.
func (p *producer) Produce(ctx context.Context, r *polykafka.Record, done func(*polykafka.Record, error)) {
	pd := &pending{rec: r, done: done}
	pd.kr = kgo.Record{
		Topic:     r.Topic,
		Partition: r.Partition,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   toKgoHeaders(r.Headers),
		Timestamp: r.Timestamp,
	}
	p.cl.Produce(ctx, &pd.kr, promise)
}

func promise(kr *kgo.Record, err error) {
	pd := pendingOf(kr)
	r := pd.rec
	switch {
	case err == nil:
		r.Partition, r.Offset, r.Timestamp = kr.Partition, kr.Offset, kr.Timestamp
	case pd.badPartition:
		err = fmt.Errorf("%w: record Partition %d: %v", errInvalidPartition, pd.kr.Partition, err)
	}
	pd.done(r, err)
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

// Close implements driver.Producer: it flushes until ctx is done, then
// closes the client, which fails what is still buffered.
func (p *producer) Close(ctx context.Context) error {
	err := p.cl.Flush(ctx)
	p.cl.Close()
	return err
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
// defers to the wrapped partitioner.
type recordPartitioner struct{ inner kgo.Partitioner }

func (rp recordPartitioner) ForTopic(t string) kgo.TopicPartitioner {
	return &recordTopicPartitioner{inner: rp.inner.ForTopic(t)}
}

type recordTopicPartitioner struct{ inner kgo.TopicPartitioner }

func (tp *recordTopicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return r.Partition >= 0 || tp.inner.RequiresConsistency(r)
}

func (tp *recordTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 {
		return tp.own(r, n)
	}
	return tp.inner.Partition(r, n)
}

func (tp *recordTopicPartitioner) PartitionByBackup(r *kgo.Record, n int, it kgo.TopicBackupIter) int {
	if r.Partition >= 0 {
		return tp.own(r, n)
	}
	if b, ok := tp.inner.(kgo.TopicBackupPartitioner); ok {
		return b.PartitionByBackup(r, n, it)
	}
	return tp.inner.Partition(r, n)
}

func (tp *recordTopicPartitioner) OnNewBatch() {
	if b, ok := tp.inner.(kgo.TopicPartitionerOnNewBatch); ok {
		b.OnNewBatch()
	}
}

// own returns the record's partition; kgo fails the record if it is out of
// range, and the promise then reports InvalidArgument.
func (tp *recordTopicPartitioner) own(r *kgo.Record, n int) int {
	if int(r.Partition) >= n {
		pendingOf(r).badPartition = true
	}
	return int(r.Partition)
}
