package polykafka

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// ErrorCode classifies an error independently of the backend that produced
// it. Every Kafka client exposes the Kafka protocol error code, so the
// classification is shared by all adapters: see [CodeForKafka].
type ErrorCode int

// Error codes. Values are stable: new codes are appended, so the list is
// not sorted by meaning. Only Rebalancing and Unavailable are retryable
// (see [IsRetryable]).
const (
	// OK is the code of a nil error.
	OK ErrorCode = iota
	// Unknown is an error no adapter could classify.
	Unknown
	// InvalidArgument is bad input: an option, a record, an offset. The
	// message names the field or value.
	InvalidArgument
	// NotFound is a missing topic, partition or group.
	NotFound
	// AlreadyExists is a resource that already exists (a topic on create).
	AlreadyExists
	// Unimplemented is a capability the backend does not have. The README's
	// capability matrix lists them per backend.
	Unimplemented
	// PermissionDenied is an authorization or authentication failure.
	PermissionDenied
	// Closed is a call on a closed consumer or producer.
	Closed
	// OffsetOutOfRange is an offset outside the partition's log.
	OffsetOutOfRange
	// Rebalancing is a group operation refused because the group is
	// rebalancing or the member's generation is stale (REBALANCE_IN_PROGRESS,
	// ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID). Retry after the rebalance.
	Rebalancing
	// Unavailable is a transient condition: leader moving, coordinator
	// loading, broker unreachable, request timeout. Retrying may succeed.
	Unavailable
	// Fenced is a member or producer replaced by another with the same
	// identity (the same group.instance.id, or the same transactional id
	// with a newer epoch): FENCED_INSTANCE_ID, PRODUCER_FENCED,
	// INVALID_PRODUCER_EPOCH. It is not retryable: the fenced consumer or
	// producer stays unusable; close it, and create a new one only if this
	// process should take the identity back.
	Fenced
	// FailedPrecondition is an operation refused because the cluster is
	// not in the state it requires, and will not get there by itself: an
	// admin reset of a group that has active members (Kafka's
	// NON_EMPTY_GROUP). It is not retryable as such: change the state
	// first (stop the group's consumers), then try again.
	FailedPrecondition
)

var codeNames = [...]string{
	OK:               "ok",
	Unknown:          "unknown",
	InvalidArgument:  "invalid argument",
	NotFound:         "not found",
	AlreadyExists:    "already exists",
	Unimplemented:    "unimplemented",
	PermissionDenied: "permission denied",
	Closed:           "closed",
	OffsetOutOfRange: "offset out of range",
	Rebalancing:      "rebalancing",
	Unavailable:      "unavailable",
	Fenced:           "fenced",

	FailedPrecondition: "failed precondition",
}

// String returns the code's name, for example "not found".
func (c ErrorCode) String() string {
	if c >= 0 && int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "ErrorCode(" + strconv.Itoa(int(c)) + ")"
}

// Sentinel errors, one per code, for errors.Is:
//
//	if errors.Is(err, polykafka.ErrNotFound) { ... }
//
// An [*Error] matches the sentinel of its code.
var (
	ErrUnknown          error = sentinel(Unknown)
	ErrInvalidArgument  error = sentinel(InvalidArgument)
	ErrNotFound         error = sentinel(NotFound)
	ErrAlreadyExists    error = sentinel(AlreadyExists)
	ErrUnimplemented    error = sentinel(Unimplemented)
	ErrPermissionDenied error = sentinel(PermissionDenied)
	ErrClosed           error = sentinel(Closed)
	ErrOffsetOutOfRange error = sentinel(OffsetOutOfRange)
	ErrRebalancing      error = sentinel(Rebalancing)
	ErrUnavailable      error = sentinel(Unavailable)
	ErrFenced           error = sentinel(Fenced)

	ErrFailedPrecondition error = sentinel(FailedPrecondition)
)

type sentinel ErrorCode

func (s sentinel) Error() string { return "polykafka: " + ErrorCode(s).String() }

// Error is the error type returned by the portable API. It carries a
// classification, the operation that failed, and the underlying error
// (usually the native client's), which errors.As can reach.
type Error struct {
	// Code classifies the error.
	Code ErrorCode
	// Op is the failed operation, for example "consumer: New".
	Op string
	// Msg is an optional human explanation, for example naming the invalid
	// field.
	Msg string
	// Err is the underlying error, or nil.
	Err error
}

// NewError returns an *Error. Adapters and the portable layer use it; a nil
// err with an empty msg yields a message made of op and code alone.
//
// Context errors are never wrapped: NewError returns err itself when it is
// context.Canceled or context.DeadlineExceeded (or wraps one), so callers
// can compare with == as well as errors.Is.
func NewError(code ErrorCode, op, msg string, err error) error {
	if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	return &Error{Code: code, Op: op, Msg: msg, Err: err}
}

// Error returns "op: msg: err (code)", on one line (line breaks in the
// wrapped errors' text become "; ").
func (e *Error) Error() string {
	s := e.Op
	add := func(p string) {
		if p == "" {
			return
		}
		if s != "" {
			s += ": "
		}
		s += p
	}
	add(e.Msg)
	if e.Err != nil {
		add(e.Err.Error())
	}
	// One line, whatever the wrapped errors say (errors.Join puts a line
	// break between its errors): logs and error reports stay parseable.
	if strings.ContainsAny(s, "\r\n") {
		s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
	}
	return s + " (" + e.Code.String() + ")"
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s, ok := target.(sentinel)
	return ok && ErrorCode(s) == e.Code
}

// Code returns the classification of err: OK for nil, the code of the first
// [*Error] in err's chain, or Unknown.
func Code(err error) ErrorCode {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var s sentinel
	if errors.As(err, &s) {
		return ErrorCode(s)
	}
	return Unknown
}

// IsRetryable reports whether retrying the failed operation may succeed:
// its code is Unavailable or Rebalancing.
func IsRetryable(err error) bool {
	c := Code(err)
	return c == Unavailable || c == Rebalancing
}

// CodeForKafka maps a Kafka protocol error code to an ErrorCode. It is
// exported so that adapters outside this module classify errors the same
// way; an adapter only extracts the protocol code from its client's error
// type.
func CodeForKafka(code int16) ErrorCode {
	switch code {
	case 0:
		return OK
	case 3, 69, 100: // UNKNOWN_TOPIC_OR_PARTITION, GROUP_ID_NOT_FOUND, UNKNOWN_TOPIC_ID
		return NotFound
	case 1: // OFFSET_OUT_OF_RANGE
		return OffsetOutOfRange
	case 36: // TOPIC_ALREADY_EXISTS
		return AlreadyExists
	case 10, 12, 17, 28, 37, 38, 40, 42, 44, 87: // MESSAGE_TOO_LARGE, OFFSET_METADATA_TOO_LARGE, INVALID_TOPIC_EXCEPTION, INVALID_COMMIT_OFFSET_SIZE, INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR, INVALID_CONFIG, INVALID_REQUEST, POLICY_VIOLATION, INVALID_RECORD
		return InvalidArgument
	case 29, 30, 31, 53, 58: // TOPIC/GROUP/CLUSTER/TRANSACTIONAL_ID_AUTHORIZATION_FAILED, SASL_AUTHENTICATION_FAILED
		return PermissionDenied
	case 33, 35: // UNSUPPORTED_SASL_MECHANISM, UNSUPPORTED_VERSION
		return Unimplemented
	case 22, 25, 27, 79: // ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS, MEMBER_ID_REQUIRED
		return Rebalancing
	case 47, 82, 90: // INVALID_PRODUCER_EPOCH, FENCED_INSTANCE_ID, PRODUCER_FENCED
		return Fenced
	case 68: // NON_EMPTY_GROUP
		return FailedPrecondition
	case -1, 5, 6, 7, 8, 13, 14, 15, 16, 19, 20, 56, 74, 75, 88, 89: // UNKNOWN_SERVER_ERROR, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMED_OUT, BROKER_NOT_AVAILABLE, NETWORK_EXCEPTION, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, NOT_ENOUGH_REPLICAS(_AFTER_APPEND), KAFKA_STORAGE_ERROR, FENCED/UNKNOWN_LEADER_EPOCH, UNSTABLE_OFFSET_COMMIT, THROTTLING_QUOTA_EXCEEDED
		return Unavailable
	}
	return Unknown
}
