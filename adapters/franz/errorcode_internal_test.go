package franz

import (
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/polykafka/polykafka"
)

// A produce request whose connection is cut mid-response fails in kgo with
// a bare io.EOF once the record's delivery timeout has passed: an outage,
// not an Unknown error.
func TestErrorCodeConnectionCut(t *testing.T) {
	assert.Equal(t, polykafka.Unavailable, errorCode(io.EOF))
	assert.Equal(t, polykafka.Unavailable, errorCode(fmt.Errorf("send: %w", io.ErrUnexpectedEOF)))
}
