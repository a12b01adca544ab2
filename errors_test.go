package polykafka

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
)

func TestCodeForKafka(t *testing.T) {
	sentinels := map[ErrorCode]error{
		Unknown: ErrUnknown, InvalidArgument: ErrInvalidArgument, NotFound: ErrNotFound,
		AlreadyExists: ErrAlreadyExists, Unimplemented: ErrUnimplemented,
		PermissionDenied: ErrPermissionDenied, Closed: ErrClosed,
		OffsetOutOfRange: ErrOffsetOutOfRange, Rebalancing: ErrRebalancing,
		Unavailable: ErrUnavailable, Fenced: ErrFenced,
	}
	for _, tc := range []struct {
		kafka     *kerr.Error
		code      ErrorCode
		retryable bool
	}{
		{kerr.FencedInstanceID, Fenced, false},
		{kerr.ProducerFenced, Fenced, false},
		{kerr.InvalidProducerEpoch, Fenced, false},
		{kerr.RebalanceInProgress, Rebalancing, true},
		{kerr.IllegalGeneration, Rebalancing, true},
		{kerr.UnknownMemberID, Rebalancing, true},
		{kerr.NotLeaderForPartition, Unavailable, true},
		{kerr.CoordinatorNotAvailable, Unavailable, true},
		{kerr.UnstableOffsetCommit, Unavailable, true},
		{kerr.UnknownTopicOrPartition, NotFound, false},
		{kerr.OffsetOutOfRange, OffsetOutOfRange, false},
		{kerr.TopicAuthorizationFailed, PermissionDenied, false},
		{kerr.InvalidTopicException, InvalidArgument, false},
		{kerr.UnsupportedVersion, Unimplemented, false},
		{&kerr.Error{Message: "NOT_A_CODE", Code: 32000}, Unknown, false},
	} {
		t.Run(tc.kafka.Message, func(t *testing.T) {
			require.Equal(t, tc.code, CodeForKafka(tc.kafka.Code), "CodeForKafka(%d)", tc.kafka.Code)

			err := fmt.Errorf("caller: %w", NewError(CodeForKafka(tc.kafka.Code), "consumer: Commit", "", tc.kafka))
			assert.Equal(t, tc.code, Code(err), "Code must find the *Error in the chain")
			assert.Equal(t, tc.retryable, IsRetryable(err), "IsRetryable of %s", tc.kafka.Message)
			for code, s := range sentinels {
				assert.Equal(t, code == tc.code, errors.Is(err, s), "errors.Is(err, %v) for an error classified %v", s, tc.code)
			}
			var pe *Error
			require.True(t, errors.As(err, &pe), "errors.As must reach the *Error")
			assert.Equal(t, tc.code, pe.Code)
			var ke *kerr.Error
			require.True(t, errors.As(err, &ke), "errors.As must reach the native error")
			assert.Equal(t, tc.kafka.Code, ke.Code)
		})
	}
	assert.Equal(t, OK, CodeForKafka(0))
}

func TestFencedCode(t *testing.T) {
	assert.Equal(t, ErrorCode(10), Unavailable, "existing codes must keep their values")
	assert.Equal(t, ErrorCode(11), Fenced, "Fenced must be appended after the existing codes")
	assert.Equal(t, "fenced", Fenced.String())
	assert.Equal(t, "polykafka: fenced", ErrFenced.Error())
	assert.Equal(t, Fenced, Code(ErrFenced))
	assert.False(t, IsRetryable(ErrFenced), "a fenced member or producer must not be retried")
}

func TestFailedPreconditionCode(t *testing.T) {
	assert.Equal(t, ErrorCode(12), FailedPrecondition, "FailedPrecondition must be appended after the existing codes")
	assert.Equal(t, "failed precondition", FailedPrecondition.String())
	assert.Equal(t, "polykafka: failed precondition", ErrFailedPrecondition.Error())
	assert.True(t, errors.Is(&Error{Code: FailedPrecondition}, ErrFailedPrecondition))
	assert.False(t, IsRetryable(ErrFailedPrecondition), "a refused precondition is not retried: the state must change first")
	assert.Equal(t, FailedPrecondition, CodeForKafka(68), "NON_EMPTY_GROUP")
	assert.Equal(t, "ErrorCode(13)", ErrorCode(13).String())
}

func TestErrorIsOneLine(t *testing.T) {
	err := NewError(Unavailable, "consumer: New", "no broker answered",
		errors.Join(errors.New("Local: Broker transport failure"), errors.New("dial refused")))
	if got, want := err.Error(), "consumer: New: no broker answered: Local: Broker transport failure; dial refused (unavailable)"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestConnectionErrorNamesTheFieldOnce(t *testing.T) {
	err := Connection{}.Validate()
	if got, want := err.Error(), "polykafka: Connection.Brokers is empty (invalid argument)"; got != want {
		t.Fatalf("Validate() = %q, want %q", got, want)
	}
}
