package producer

import (
	"context"
	"maps"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
)

// OffsetSource is what SendOffsets reads a consumer's progress from:
// *consumer.Consumer implements it.
type OffsetSource interface {
	// TransactionOffsets returns the consumer's group metadata and the
	// offsets of its processed records not committed yet (with their
	// commit metadata).
	TransactionOffsets() (driver.GroupMetadata, map[polykafka.TopicPartition]polykafka.CommittedOffset, error)
}

func (p *Producer) transactor(op string) (driver.Transactor, error) {
	if p.closed.Load() {
		return nil, polykafka.NewError(polykafka.Closed, op, "", nil)
	}
	if p.s.TransactionalID == "" {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "the producer is not transactional (Options.TransactionalID is empty)", nil)
	}
	t, ok := p.d.(driver.Transactor)
	if !ok {
		return nil, polykafka.NewError(polykafka.Unimplemented, op, "backend "+p.backend+" has no transactions", nil)
	}
	return t, nil
}

// BeginTransaction starts a transaction: records sent until
// CommitTransaction or AbortTransaction belong to it, and consumers with
// ReadCommitted see them only if it commits. One transaction at a time;
// the producer needs Options.TransactionalID.
func (p *Producer) BeginTransaction(ctx context.Context) error {
	const op = "producer: BeginTransaction"
	t, err := p.transactor(op)
	if err != nil {
		return err
	}
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if p.inTx {
		return polykafka.NewError(polykafka.InvalidArgument, op, "a transaction is already open", nil)
	}
	if err := t.BeginTransaction(ctx); err != nil {
		return p.wrap(op, err)
	}
	p.inTx = true
	return nil
}

// SendOffsets adds the processed, uncommitted offsets of c (a consumer in
// CommitManual mode, so that it does not commit them itself) to the open
// transaction: they are committed if and only if the transaction commits
// (consume-transform-produce, exactly once).
func (p *Producer) SendOffsets(ctx context.Context, c OffsetSource) error {
	const op = "producer: SendOffsets"
	t, err := p.transactor(op)
	if err != nil {
		return err
	}
	if c == nil {
		return polykafka.NewError(polykafka.InvalidArgument, op, "offset source is nil", nil)
	}
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if !p.inTx {
		return polykafka.NewError(polykafka.InvalidArgument, op, "no transaction is open", nil)
	}
	md, offsets, err := c.TransactionOffsets()
	if err != nil {
		return err
	}
	if len(offsets) == 0 {
		return nil
	}
	return p.wrap(op, t.SendOffsets(ctx, md, maps.Clone(offsets)))
}

// CommitTransaction waits for every record of the transaction to be
// acknowledged, then commits it. If a record failed, the transaction is
// aborted instead and the error returned.
func (p *Producer) CommitTransaction(ctx context.Context) error {
	return p.endTransaction(ctx, "producer: CommitTransaction", true)
}

// AbortTransaction waits for every record sent in the transaction to be
// delivered, then aborts it: consumers with ReadCommitted never see them.
func (p *Producer) AbortTransaction(ctx context.Context) error {
	return p.endTransaction(ctx, "producer: AbortTransaction", false)
}

func (p *Producer) endTransaction(ctx context.Context, op string, commit bool) error {
	t, err := p.transactor(op)
	if err != nil {
		return err
	}
	p.txMu.Lock()
	defer p.txMu.Unlock()
	if !p.inTx {
		return polykafka.NewError(polykafka.InvalidArgument, op, "no transaction is open", nil)
	}
	if err := p.flush(ctx, op, false); err != nil {
		return err
	}
	err = t.EndTransaction(ctx, commit)
	p.inTx = false
	return p.wrap(op, err)
}
