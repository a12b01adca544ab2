package franz

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// txnState is what the adapter tracks of the open transaction beyond kgo:
// kgo ends a transaction only if it produced to it or added offsets
// through its own group, so offsets added for another client's group
// (SendOffsets) with no record produced are ended here.
type txnState struct {
	produced     atomic.Bool // a record of the transaction was written
	offsetsAdded atomic.Bool
}

var errNotTransactional = errors.New("franz: the producer is not transactional")

// BeginTransaction implements driver.Transactor.
func (p *producer) BeginTransaction(context.Context) error {
	if p.txID == "" {
		return errNotTransactional
	}
	p.txn.produced.Store(false)
	p.txn.offsetsAdded.Store(false)
	return p.cl.BeginTransaction()
}

// SendOffsets implements driver.Transactor with the two requests of
// KIP-98/KIP-447: AddOffsetsToTxn to the transaction coordinator, then
// TxnOffsetCommit to the group coordinator with the consumer's generation
// and member id. (kgo's own path, GroupTransactSession, needs the producer
// and the consumer to be one client; polykafka's are two.)
func (p *producer) SendOffsets(ctx context.Context, group driver.GroupMetadata, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	if p.txID == "" {
		return errNotTransactional
	}
	id, epoch, err := p.cl.ProducerID(ctx)
	if err != nil {
		return err
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID = p.txID
	add.ProducerID, add.ProducerEpoch = id, epoch
	add.Group = group.Group
	addResp, err := add.RequestWith(ctx, p.cl)
	if err != nil {
		return err
	}
	if err := kerr.ErrorForCode(addResp.ErrorCode); err != nil {
		return fmt.Errorf("AddOffsetsToTxn: %w", err)
	}
	p.txn.offsetsAdded.Store(true)

	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID = p.txID
	commit.Group = group.Group
	commit.ProducerID, commit.ProducerEpoch = id, epoch
	commit.Generation = group.Generation
	commit.MemberID = group.MemberID
	if group.InstanceID != "" {
		commit.InstanceID = kmsg.StringPtr(group.InstanceID)
	}
	// TxnOffsetCommit v6+ names topics by id.
	ids, err := p.topicIDs(ctx, offsets)
	if err != nil {
		return err
	}
	byTopic := make(map[string]int)
	for tp, o := range offsets {
		i, ok := byTopic[tp.Topic]
		if !ok {
			t := kmsg.NewTxnOffsetCommitRequestTopic()
			t.Topic = tp.Topic
			t.TopicID = ids[tp.Topic]
			commit.Topics = append(commit.Topics, t)
			i = len(commit.Topics) - 1
			byTopic[tp.Topic] = i
		}
		pt := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		pt.Partition = tp.Partition
		pt.Offset = o.Offset
		pt.LeaderEpoch = -1
		meta := o.Metadata
		pt.Metadata = &meta
		commit.Topics[i].Partitions = append(commit.Topics[i].Partitions, pt)
	}
	resp, err := commit.RequestWith(ctx, p.cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, pt := range t.Partitions {
			if err := kerr.ErrorForCode(pt.ErrorCode); err != nil {
				return fmt.Errorf("TxnOffsetCommit %s/%d: %w", t.Topic, pt.Partition, err)
			}
		}
	}
	return nil
}

// topicIDs returns the ids of the topics of offsets, from metadata at most
// a minute old.
func (p *producer) topicIDs(ctx context.Context, offsets map[polykafka.TopicPartition]polykafka.CommittedOffset) (map[string][16]byte, error) {
	req := kmsg.NewPtrMetadataRequest()
	seen := make(map[string]bool)
	for tp := range offsets {
		if !seen[tp.Topic] {
			seen[tp.Topic] = true
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(tp.Topic)
			req.Topics = append(req.Topics, rt)
		}
	}
	resp, err := p.cl.RequestCachedMetadata(ctx, req, time.Minute)
	if err != nil {
		return nil, err
	}
	out := make(map[string][16]byte, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic != nil {
			out[*t.Topic] = t.TopicID
		}
	}
	return out, nil
}

// EndTransaction implements driver.Transactor.
func (p *producer) EndTransaction(ctx context.Context, commit bool) error {
	if p.txID == "" {
		return errNotTransactional
	}
	try := kgo.TryAbort
	if commit {
		try = kgo.TryCommit
	}
	if !commit {
		// Records still buffered belong to the aborted transaction.
		if err := p.cl.AbortBufferedRecords(ctx); err != nil {
			return err
		}
	}
	produced, offsets := p.txn.produced.Load(), p.txn.offsetsAdded.Load()
	if err := p.cl.EndTransaction(ctx, try); err != nil {
		return err
	}
	if produced || !offsets {
		return nil // kgo ended it (or there was nothing to end)
	}
	id, epoch, err := p.cl.ProducerID(ctx)
	if err != nil {
		return err
	}
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID = p.txID
	end.ProducerID, end.ProducerEpoch = id, epoch
	end.Commit = commit
	resp, err := end.RequestWith(ctx, p.cl)
	if err != nil {
		return err
	}
	return kerr.ErrorForCode(resp.ErrorCode)
}
