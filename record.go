package polykafka

import (
	"fmt"
	"reflect"
	"time"
)

// Special offsets understood by the portable API and by adapters wherever an
// offset may name a position rather than a record.
const (
	// OffsetLatest is the end of a partition: the offset the next produced
	// record will get (the high watermark).
	OffsetLatest int64 = -1
	// OffsetEarliest is the first offset still in the log (the log start
	// offset).
	OffsetEarliest int64 = -2
)

// AnyPartition in [Record.Partition] on produce lets the producer's key
// partitioner choose the partition. See producer.Options.RecordPartition.
const AnyPartition int32 = -1

// TopicPartition names one partition of one topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// String returns "topic/partition".
func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// Header is a record header. Keys need not be unique.
type Header struct {
	Key   string
	Value []byte
}

// Record is a Kafka record, used in both directions.
//
// Consumers fill every field. Producers read Topic, Key, Value, Headers,
// Timestamp and, when the producer is configured for it, Partition; on a
// successful send they set Partition, Offset and Timestamp.
type Record struct {
	// Topic is the record's topic. Required on produce.
	Topic string
	// Partition is the record's partition. On produce it is ignored unless
	// the producer's RecordPartition option is set, in which case a value
	// of AnyPartition (-1) still defers to the key partitioner.
	Partition int32
	// Offset is the record's offset in its partition. Set by consumers and
	// by successful sends; ignored on produce.
	Offset int64
	// Key is the record key. A nil key and an empty key are distinct on the
	// wire and are kept distinct in both directions.
	Key []byte
	// Value is the record value. Nil and empty are kept distinct.
	Value []byte
	// Headers are the record headers, in order.
	Headers []Header
	// Timestamp is the record timestamp. On produce, the zero time is
	// replaced by the send time (to about a millisecond: a coarse clock,
	// the same on every backend), which the record keeps.
	Timestamp time.Time

	// Native is the record as the backend's client represents it (for the
	// franz adapter a *kgo.Record), or nil. Each adapter documents its type
	// in its package doc under "# As". Producers ignore it.
	Native any
}

// TopicPartition returns the record's topic and partition.
func (r *Record) TopicPartition() TopicPartition {
	return TopicPartition{Topic: r.Topic, Partition: r.Partition}
}

// As sets *target to the record's native representation if target is a
// non-nil pointer to a type that the native record is assignable to (or,
// for a native record held by pointer, that the pointed-to value is
// assignable to), and reports whether it did. It returns false for a nil
// target or a record without a native value.
//
//	var kr *kgo.Record
//	if rec.As(&kr) { ... }
func (r *Record) As(target any) bool {
	if r == nil || r.Native == nil || target == nil {
		return false
	}
	pv := reflect.ValueOf(target)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return false
	}
	nv := reflect.ValueOf(r.Native)
	if nv.Type().AssignableTo(pv.Elem().Type()) {
		pv.Elem().Set(nv)
		return true
	}
	// A native record held by pointer (which costs no allocation per
	// record) also fills a variable of the pointed-to type.
	if nv.Kind() == reflect.Pointer && !nv.IsNil() && nv.Elem().Type().AssignableTo(pv.Elem().Type()) {
		pv.Elem().Set(nv.Elem())
		return true
	}
	return false
}

// CommittedOffset is a group's committed position in one partition as Kafka
// stores it: the next offset to consume and the commit's metadata string.
type CommittedOffset struct {
	Offset   int64
	Metadata string
}
