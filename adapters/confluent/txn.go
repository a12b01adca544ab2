//go:build cgo

package confluent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"unsafe"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

var _ driver.Transactor = (*producer)(nil)

// BeginTransaction implements driver.Transactor.
func (p *producer) BeginTransaction(ctx context.Context) error {
	return p.txnCall(ctx, func() error { return p.kp.BeginTransaction() })
}

// SendOffsets implements driver.Transactor with SendOffsetsToTransaction.
// The binding builds a kafka.ConsumerGroupMetadata only from a live
// kafka.Consumer (or, for tests, from a group id alone); the adapter
// builds it from group, in librdkafka's serialized form, so that the
// broker fences offsets of a stale generation (KIP-447).
func (p *producer) SendOffsets(ctx context.Context, group driver.GroupMetadata, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	cgmd, err := encodeGroupMetadata(group)
	if err != nil {
		return err
	}
	tps := nativeOffsets(offsets)
	return p.txnCall(ctx, func() error { return p.kp.SendOffsetsToTransaction(ctx, tps, cgmd) })
}

// EndTransaction implements driver.Transactor with CommitTransaction or
// AbortTransaction.
func (p *producer) EndTransaction(ctx context.Context, commit bool) error {
	return p.txnCall(ctx, func() error {
		if commit {
			return p.kp.CommitTransaction(ctx)
		}
		return p.kp.AbortTransaction(ctx)
	})
}

func (p *producer) txnCall(ctx context.Context, f func() error) error {
	if !p.txn {
		return polykafka.NewError(polykafka.InvalidArgument, "confluent: transaction", "the producer has no TransactionalID", nil)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p.life.RLock()
	defer p.life.RUnlock()
	if p.closed {
		return errClosed
	}
	return f()
}

// librdkafka's serialized consumer group metadata
// (rd_kafka_consumer_group_metadata_write, librdkafka 2.11): the magic,
// the generation id (int32, host byte order), the group id and the member
// id (NUL-terminated), a byte that is 1 when there is no group instance
// id, else 0 followed by the NUL-terminated instance id.
const cgmdMagic = "CGMDv2:"

var errCGMD = polykafka.NewError(polykafka.Unimplemented, "confluent: consumer group metadata",
	"this confluent-kafka-go version's ConsumerGroupMetadata is not the one the adapter knows", nil)

// cgmdBytes returns a pointer to md's serialized form, or nil if the
// binding's type is not the one-field struct the adapter was written for.
func cgmdBytes(md *kafka.ConsumerGroupMetadata) *[]byte {
	t := reflect.TypeFor[kafka.ConsumerGroupMetadata]()
	if t.NumField() != 1 || t.Field(0).Type != reflect.TypeFor[[]byte]() {
		return nil
	}
	return (*[]byte)(unsafe.Pointer(md))
}

func encodeGroupMetadata(g driver.GroupMetadata) (*kafka.ConsumerGroupMetadata, error) {
	md, err := kafka.NewTestConsumerGroupMetadata(g.Group)
	if err != nil {
		return nil, err
	}
	b := cgmdBytes(md)
	if b == nil || !bytes.HasPrefix(*b, []byte(cgmdMagic)) {
		return nil, errCGMD
	}
	var buf []byte
	buf = append(buf, cgmdMagic...)
	buf = binary.NativeEndian.AppendUint32(buf, uint32(g.Generation))
	buf = append(append(buf, g.Group...), 0)
	buf = append(append(buf, g.MemberID...), 0)
	if g.InstanceID == "" {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
		buf = append(append(buf, g.InstanceID...), 0)
	}
	*b = buf
	return md, nil
}

func decodeGroupMetadata(md *kafka.ConsumerGroupMetadata) (driver.GroupMetadata, error) {
	var g driver.GroupMetadata
	p := cgmdBytes(md)
	if p == nil {
		return g, errCGMD
	}
	b := *p
	if !bytes.HasPrefix(b, []byte(cgmdMagic)) || len(b) < len(cgmdMagic)+4 {
		return g, errCGMD
	}
	b = b[len(cgmdMagic):]
	g.Generation = int32(binary.NativeEndian.Uint32(b))
	b = b[4:]
	cstr := func() (string, bool) {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return "", false
		}
		s := string(b[:i])
		b = b[i+1:]
		return s, true
	}
	var ok bool
	if g.Group, ok = cstr(); !ok {
		return g, errCGMD
	}
	if g.MemberID, ok = cstr(); !ok || len(b) < 1 {
		return g, errCGMD
	}
	isNull := b[0]
	b = b[1:]
	if isNull == 0 {
		if g.InstanceID, ok = cstr(); !ok {
			return g, errCGMD
		}
	}
	if len(b) != 0 {
		return g, errors.Join(errCGMD, errors.New("trailing bytes"))
	}
	return g, nil
}
