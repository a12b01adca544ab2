package consumer

import (
	"context"
	"strconv"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/producer"
)

// Header keys of a dead-letter record. The record keeps the failed
// record's key, value and headers; these headers are appended after them.
const (
	// HeaderDLTTopic is the failed record's topic.
	HeaderDLTTopic = "polykafka.dlt.topic"
	// HeaderDLTPartition is the failed record's partition, in decimal.
	HeaderDLTPartition = "polykafka.dlt.partition"
	// HeaderDLTOffset is the failed record's offset, in decimal.
	HeaderDLTOffset = "polykafka.dlt.offset"
	// HeaderDLTTimestamp is the failed record's timestamp, in Unix
	// milliseconds (decimal). The dead-letter record's own timestamp is
	// the time it was sent.
	HeaderDLTTimestamp = "polykafka.dlt.timestamp"
	// HeaderDLTError is the text of the handler's last error.
	HeaderDLTError = "polykafka.dlt.error"
	// HeaderDLTAttempts is the number of handler attempts made, in decimal.
	HeaderDLTAttempts = "polykafka.dlt.attempts"
	// HeaderDLTTime is when the record was dead-lettered, in RFC 3339 with
	// nanoseconds, UTC.
	HeaderDLTTime = "polykafka.dlt.time"
	// HeaderDLTGroup is the consumer group that failed to handle it.
	HeaderDLTGroup = "polykafka.dlt.group"
)

// DeadLetter sends records whose handling failed for good to a
// dead-letter topic (see ErrorPolicy.DeadLetter).
//
// A dead-lettered record counts as processed once Producer acknowledged
// the dead-letter write: its offset is then committed like any other. If
// the write fails, the consumer stops with that error (as with no
// DeadLetter) and the record's offset is not committed: a record is never
// dropped. Each write is bounded by Options.CloseTimeout: one that takes
// longer fails. The dead-letter topic must exist (polykafka never relies
// on topic auto-creation).
//
// With RunBatch, every record of the failed batch is dead-lettered, in
// order.
type DeadLetter struct {
	// Producer writes the dead-letter records. Required. It may be on any
	// backend (not necessarily the consumer's) and is not closed by the
	// consumer. Its acks setting is what "acknowledged" means.
	Producer *producer.Producer
	// Topic chooses the dead-letter topic of a failed record. Nil means
	// the record's topic followed by ".DLT" (orders -> orders.DLT).
	Topic func(r polykafka.Record) string
}

// topic returns the dead-letter topic of r.
func (d *DeadLetter) topic(r polykafka.Record) string {
	if d.Topic != nil {
		if t := d.Topic(r); t != "" {
			return t
		}
	}
	return r.Topic + ".DLT"
}

// deadLetter writes rs, which failed with cause after attempts attempts,
// to their dead-letter topic and returns nil once every write is
// acknowledged, or the first write error.
func (c *Consumer) deadLetter(ctx context.Context, rs []polykafka.Record, attempts int, cause error) error {
	d := c.s.OnError.DeadLetter
	ctx, cancel := context.WithTimeout(ctx, c.s.CloseTimeout)
	defer cancel()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	errText := ""
	if cause != nil {
		errText = cause.Error()
	}
	for i := range rs {
		r := &rs[i]
		hs := make([]polykafka.Header, 0, len(r.Headers)+8)
		hs = append(hs, r.Headers...)
		hs = append(hs,
			polykafka.Header{Key: HeaderDLTTopic, Value: []byte(r.Topic)},
			polykafka.Header{Key: HeaderDLTPartition, Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
			polykafka.Header{Key: HeaderDLTOffset, Value: strconv.AppendInt(nil, r.Offset, 10)},
			polykafka.Header{Key: HeaderDLTTimestamp, Value: strconv.AppendInt(nil, r.Timestamp.UnixMilli(), 10)},
			polykafka.Header{Key: HeaderDLTError, Value: []byte(errText)},
			polykafka.Header{Key: HeaderDLTAttempts, Value: strconv.AppendInt(nil, int64(attempts), 10)},
			polykafka.Header{Key: HeaderDLTTime, Value: []byte(now)},
			polykafka.Header{Key: HeaderDLTGroup, Value: []byte(c.group)},
		)
		out := &polykafka.Record{
			Topic:     d.topic(*r),
			Partition: polykafka.AnyPartition,
			Key:       r.Key,
			Value:     r.Value,
			Headers:   hs,
		}
		if err := d.Producer.Send(ctx, out); err != nil {
			return err
		}
		c.s.Logger.Warn("polykafka: record dead-lettered", "group", c.group, "partition", r.TopicPartition().String(),
			"offset", r.Offset, "to", out.Topic, "attempts", attempts, "err", cause)
	}
	return nil
}
