package admin

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

type targetKind int

const (
	targetNone targetKind = iota
	targetEarliest
	targetLatest
	targetTime
	targetOffset
)

// Target is where a reset moves positions. The zero Target is invalid; use
// [Earliest], [Latest], [At], [Offset] or [ParseTarget].
type Target struct {
	kind   targetKind
	time   time.Time
	offset int64
}

// Earliest moves positions to the log start offset: the group re-reads
// everything still in the log.
func Earliest() Target { return Target{kind: targetEarliest} }

// Latest moves positions to the high watermark: the group skips everything
// written so far.
func Latest() Target { return Target{kind: targetLatest} }

// At moves positions to the first record whose timestamp is at or after t,
// or to the high watermark where there is none (as kafka-consumer-groups.sh
// --to-datetime does). t is truncated to the millisecond.
func At(t time.Time) Target { return Target{kind: targetTime, time: t} }

// Offset moves positions to off, clamped to the log: an offset before the
// log start offset becomes the log start offset, one after the high
// watermark becomes the high watermark.
func Offset(off int64) Target { return Target{kind: targetOffset, offset: off} }

// ParseTarget parses "earliest", "latest", an RFC 3339 time (for example
// "2026-12-01T04:00:00Z") or a non-negative offset.
func ParseTarget(s string) (Target, error) {
	switch s = strings.TrimSpace(s); s {
	case "earliest":
		return Earliest(), nil
	case "latest":
		return Latest(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return Target{}, fmt.Errorf("target %q: a negative offset", s)
		}
		return Offset(n), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return At(t), nil
	}
	return Target{}, fmt.Errorf("target %q: want earliest, latest, an RFC 3339 time or an offset", s)
}

// String returns "earliest", "latest", "time <RFC 3339>" or "offset <n>".
func (t Target) String() string {
	switch t.kind {
	case targetEarliest:
		return "earliest"
	case targetLatest:
		return "latest"
	case targetTime:
		return "time " + t.time.UTC().Format(time.RFC3339Nano)
	case targetOffset:
		return "offset " + strconv.FormatInt(t.offset, 10)
	}
	return "invalid target"
}

func (t Target) validate() error {
	switch t.kind {
	case targetEarliest, targetLatest:
		return nil
	case targetTime:
		if t.time.IsZero() || t.time.UnixMilli() < 0 {
			return fmt.Errorf("target: time %v is zero or before 1970", t.time)
		}
		return nil
	case targetOffset:
		if t.offset < 0 {
			return fmt.Errorf("target: offset %d is negative", t.offset)
		}
		return nil
	}
	return fmt.Errorf("target: the zero Target; use Earliest, Latest, At, Offset or ParseTarget")
}
