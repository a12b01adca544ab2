package polysarama

import (
	"errors"
	"testing"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/assert"

	"github.com/polykafka/polykafka"
)

// TestStaleEpochIsUnavailable: a batch refused under the epoch sarama
// raised itself (found by the soak after a cut: 47 records failed Fenced
// well inside their delivery timeout) is Unavailable on an idempotent
// producer, so the portable producer produces it again; on a
// transactional producer it stays fatal.
func TestStaleEpochIsUnavailable(t *testing.T) {
	p := &producer{idempotent: true}
	err := p.staleEpoch(sarama.ErrInvalidProducerEpoch)
	assert.Equal(t, polykafka.Unavailable, polykafka.Code(err))
	assert.True(t, errors.Is(err, sarama.ErrInvalidProducerEpoch), "the client's error stays in the chain")

	other := p.staleEpoch(sarama.ErrNotEnoughReplicas)
	assert.Equal(t, sarama.ErrNotEnoughReplicas, other, "other errors are left as they are")

	txn := &producer{idempotent: true, transactional: true}
	assert.Equal(t, sarama.ErrInvalidProducerEpoch, txn.staleEpoch(sarama.ErrInvalidProducerEpoch))
	assert.Equal(t, polykafka.Fenced, errorCode(sarama.ErrInvalidProducerEpoch), "what the adapter classifies it as otherwise")
}
