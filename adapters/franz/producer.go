package franz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

type producer struct {
	cluster
	cur       atomic.Pointer[chunk] // where the next pendings come from
	pool      sync.Pool             // chunks whose every record was delivered
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
	next atomic.Int64 // slots handed out (by the sending goroutines)
	_    [56]byte     // next and done on different cache lines
	done atomic.Int64 // slots delivered (by kgo's goroutines)
	_    [56]byte
	ps   [pendingChunk]pending
}

const pendingChunk = 256

func newChunk() *chunk {
	c := new(chunk)
	for i := range c.ps {
		c.ps[i].c = c // for good: a chunk's slots stay in it
	}
	return c
}

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
		kgo.RecordPartitioner(recordPartitioner{inner: kgo.UniformBytesPartitioner(64<<10, true, true, nil), manual: cfg.ManualPartitions}),
		kgo.ProducerLinger(cfg.Linger),
		// Kafka's delivery.timeout.ms, which kgo has as such; retries stay
		// unlimited within it (kgo's default RecordRetries).
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
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
	} else if idem {
		// Kafka's delivery.timeout.ms fails a record whose request is in
		// flight when the timeout passes (Java's producer then bumps its
		// epoch, as kgo does); kgo's idempotent default waits for such a
		// record's outcome however long an outage lasts. A transactional
		// producer keeps kgo's default (kgo refuses both at once): its
		// records are bounded by the transaction instead.
		opts = append(opts, kgo.AllowIdempotentProduceCancellation())
	}
	switch cfg.Compression {
	case driver.CompressionNone:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case driver.CompressionGzip:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case driver.CompressionSnappy:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case driver.CompressionLZ4:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case driver.CompressionZstd:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "compression "+string(cfg.Compression), nil)
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
	return &producer{cluster: newCluster(cl), delivered: cfg.Delivered, idem: idem, txID: cfg.TransactionalID}, nil
}

// pending is one record in flight: the kgo.Record handed to kgo and what
// the promise needs. kr is the first field, so the promise finds the
// pending from the *kgo.Record kgo gives back, without a map or a closure
// per record; the record's Context is the Produce context itself.
type pending struct {
	kr   kgo.Record
	c    *chunk
	p    *producer
	rec  *polykafka.Record
	done func(*polykafka.Record, error)
}

// pendingOf returns the pending of a record the adapter produced. Only the
// adapter's records reach promise (records produced natively through As
// carry their own promise), so every record it sees is the kr of a pending.
func pendingOf(kr *kgo.Record) *pending {
	return (*pending)(unsafe.Pointer(kr))
}

// alloc returns a pending slot. Slots come from chunks of pendingChunk,
// handed out by an atomic index; a chunk whose every slot was delivered
// goes back to the producer's pool, so the record path allocates nothing
// in the steady state. A chunk is reused only after kgo called the
// promise of each of its records, after which kgo no longer reads them.
func (p *producer) alloc() *pending {
	for {
		c := p.cur.Load()
		if c != nil {
			if i := c.next.Add(1) - 1; i < pendingChunk {
				return &c.ps[i]
			}
		}
		nc, _ := p.pool.Get().(*chunk)
		if nc == nil {
			nc = newChunk()
		}
		nc.done.Store(0)
		nc.next.Store(1)
		if p.cur.CompareAndSwap(c, nc) {
			return &nc.ps[0]
		}
		// Another goroutine installed a chunk first. nc is dropped, not
		// kept for reuse: a goroutine holding a stale pointer to nc (a
		// reused chunk) may have taken a slot of it since next was reset,
		// and a reuse would hand that slot out twice. Its slots that are
		// in use keep it alive; the GC frees it after them.
	}
}

// Produce implements driver.Producer.
func (p *producer) Produce(ctx context.Context, r *polykafka.Record, done func(*polykafka.Record, error)) {
	pd := p.alloc()
	pd.p, pd.rec, pd.done = p, r, done
	// Every field of the (reused) slot, one at a time: assigning a whole
	// kgo.Record literal to the chunk costs a bulk write barrier per
	// record while the GC runs (TestKgoRecordFields fails when kgo.Record
	// gains a field this must set).
	kr := &pd.kr
	kr.Key = r.Key
	kr.Value = r.Value
	kr.Headers = toKgoHeaders(r.Headers)
	kr.Timestamp = r.Timestamp
	kr.Topic = r.Topic
	kr.Partition = r.Partition
	kr.Attrs = kgo.RecordAttrs{}
	kr.ProducerEpoch = 0
	kr.ProducerID = 0
	kr.LeaderEpoch = 0
	kr.Offset = adapterMark
	kr.Context = ctx
	p.cl.Produce(ctx, kr, promise)
}

// adapterMark is the Offset of the kgo.Records the adapter produces, until
// kgo sets the real offset in the promise: kgo ignores a produced record's
// Offset (it writes it only on completion), so it tells the adapter's
// records from native ones in the partitioner at no cost.
const adapterMark int64 = -0x706f6c796b61 // "polyka"

func promise(kr *kgo.Record, err error) {
	pd := pendingOf(kr)
	p, r, done, c := pd.p, pd.rec, pd.done, pd.c
	switch {
	case err == nil:
		r.Partition, r.Offset, r.Timestamp = kr.Partition, kr.Offset, kr.Timestamp
		if p.txID != "" {
			p.txn.produced.Store(true)
		}
	case kr.Partition >= 0 && strings.HasPrefix(err.Error(), "invalid record partitioning choice"):
		// kgo's error for a partition the topic does not have (producer.go,
		// partitionsForTopicProduce); it has no sentinel.
		err = fmt.Errorf("%w: record Partition %d: %v", errInvalidPartition, kr.Partition, err)
	}
	// The slot is done: drop what it refers to (so a pooled chunk keeps no
	// record alive), then count it; the last one returns the chunk. Only
	// the references are cleared: Produce overwrites the rest.
	pd.kr.Topic, pd.kr.Key, pd.kr.Value, pd.kr.Headers, pd.kr.Context = "", nil, nil, nil, nil
	pd.p, pd.rec, pd.done = nil, nil, nil
	if c.done.Add(1) == pendingChunk {
		p.pool.Put(c)
	}
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

// recordPartitioner honours a record's own partition (>= 0) when the
// producer was opened with ManualPartitions, and otherwise defers to the
// wrapped partitioner. The per-topic wrapper implements kgo's optional
// partitioner interfaces only where the wrapped one does: kgo changes its
// batching when a partitioner has OnNewBatch (KIP-480), so advertising one
// the wrapped partitioner lacks would change behaviour.
type recordPartitioner struct {
	inner  kgo.Partitioner
	manual bool
}

func (rp recordPartitioner) ForTopic(t string) kgo.TopicPartitioner {
	inner := rp.inner.ForTopic(t)
	base := recordTP{inner: inner, manual: rp.manual}
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

type recordTP struct {
	inner  kgo.TopicPartitioner
	manual bool
}

// own reports whether r goes to its own partition: an adapter record
// (marked) with a partition, on a producer opened with ManualPartitions.
// Records produced natively through As keep kgo's semantics.
func (tp *recordTP) own(r *kgo.Record) bool {
	return tp.manual && r.Partition >= 0 && r.Offset == adapterMark
}

func (tp *recordTP) RequiresConsistency(r *kgo.Record) bool {
	return tp.own(r) || tp.inner.RequiresConsistency(r)
}

// Partition returns r's own partition, or the wrapped partitioner's
// choice; kgo fails the record if its own partition is out of range.
func (tp *recordTP) Partition(r *kgo.Record, n int) int {
	if tp.own(r) {
		return int(r.Partition)
	}
	return tp.inner.Partition(r, n)
}

type backupTP struct {
	recordTP
	b kgo.TopicBackupPartitioner
}

func (tp *backupTP) PartitionByBackup(r *kgo.Record, n int, it kgo.TopicBackupIter) int {
	if tp.own(r) {
		return int(r.Partition)
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
