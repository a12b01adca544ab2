package discovery

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/offsetstore"
)

type pos = offsetstore.Position

func mk(off int64, base int32) pos { return pos{Offset: off, Baseline: base} }

// offsets returns log start 10*p and end 100+10*p for each of ps, so that
// every partition resolves to distinct offsets.
func logs(ps ...int32) (start, end map[int32]int64) {
	start, end = map[int32]int64{}, map[int32]int64{}
	for _, p := range ps {
		start[p] = int64(10 * p)
		end[p] = int64(100 + 10*p)
	}
	return start, end
}

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	type want struct {
		off    int64
		reason Reason
		base   int32
	}
	cases := []struct {
		name string
		rule string
		in   Input
		want map[int32]want
	}{
		{
			name: "committed",
			rule: "a stored position inside the log is resumed exactly",
			in:   Input{Partitions: []int32{0, 1}, Count: 2, Positions: map[int32]pos{0: mk(50, 2), 1: mk(110, 2)}},
			want: map[int32]want{0: {50, ReasonCommitted, 2}, 1: {110, ReasonCommitted, 2}},
		},
		{
			name: "committed at the bounds",
			rule: "a position equal to the log start or the high watermark is inside the log",
			in:   Input{Partitions: []int32{0, 1}, Count: 2, Positions: map[int32]pos{0: mk(0, 2), 1: mk(110, 2)}},
			want: map[int32]want{0: {0, ReasonCommitted, 2}, 1: {110, ReasonCommitted, 2}},
		},
		{
			name: "initial latest by default",
			rule: "a group that never read the topic starts at the end (the default initial policy) and records the current count as baseline",
			in:   Input{Partitions: []int32{0, 1, 2}, Count: 3},
			want: map[int32]want{0: {100, ReasonInitial, 3}, 1: {110, ReasonInitial, 3}, 2: {120, ReasonInitial, 3}},
		},
		{
			name: "initial earliest",
			rule: "Initial=earliest starts a never-read topic at the log start",
			in:   Input{Partitions: []int32{1}, Count: 2, Initial: Earliest},
			want: map[int32]want{1: {10, ReasonInitial, 2}},
		},
		{
			name: "initial time",
			rule: "Initial=At(t) starts at the offset resolved for t",
			in:   Input{Partitions: []int32{0, 1}, Count: 2, Initial: At(t0), Times: map[int64]map[int32]int64{t0.UnixMilli(): {0: 42, 1: -1}}},
			want: map[int32]want{0: {42, ReasonInitial, 2}, 1: {110, ReasonInitial, 2}},
		},
		{
			name: "growth before the first decision",
			rule: "with no positions, the baseline is the count the member saw at start when smaller, so later-assigned partitions created since count as new",
			in:   Input{Partitions: []int32{0, 1}, Count: 4, Known: 2},
			want: map[int32]want{0: {100, ReasonInitial, 2}, 1: {110, ReasonInitial, 2}},
		},
		{
			name: "known ignored once positions exist",
			rule: "a recorded baseline wins over the member's own view",
			in:   Input{Partitions: []int32{2}, Count: 4, Known: 1, Positions: map[int32]pos{0: mk(100, 3)}},
			want: map[int32]want{2: {120, ReasonInitial, 3}},
		},
		{
			name: "new partition",
			rule: "a partition with id >= the baseline and no position was created after the group started: earliest",
			in:   Input{Partitions: []int32{2, 3}, Count: 4, Positions: map[int32]pos{0: mk(50, 2), 1: mk(60, 2)}},
			want: map[int32]want{2: {20, ReasonNewPartition, 2}, 3: {30, ReasonNewPartition, 2}},
		},
		{
			name: "new partition latest policy",
			rule: "NewPartitions=latest is honoured when set",
			in:   Input{Partitions: []int32{2}, Count: 3, Positions: map[int32]pos{0: mk(50, 2)}, NewPartitions: Latest},
			want: map[int32]want{2: {120, ReasonNewPartition, 2}},
		},
		{
			name: "first generation race",
			rule: "a partition below the baseline without a position is not new: a peer of the same first generation committed first",
			in:   Input{Partitions: []int32{2, 3}, Count: 4, Positions: map[int32]pos{0: mk(100, 4), 1: mk(110, 4)}},
			want: map[int32]want{2: {120, ReasonInitial, 4}, 3: {130, ReasonInitial, 4}},
		},
		{
			name: "conflicting baselines",
			rule: "with several baselines the smallest wins, so more partitions count as new (replay, never loss)",
			in:   Input{Partitions: []int32{2}, Count: 4, Positions: map[int32]pos{0: mk(100, 2), 1: mk(110, 4)}},
			want: map[int32]want{2: {20, ReasonNewPartition, 2}},
		},
		{
			name: "commits by another client",
			rule: "positions without baseline mean a known topic: a partition without position is new (earliest), and the count becomes the baseline",
			in:   Input{Partitions: []int32{0, 1}, Count: 2, Positions: map[int32]pos{0: mk(50, 0)}},
			want: map[int32]want{0: {50, ReasonCommitted, 2}, 1: {10, ReasonNewPartition, 2}},
		},
		{
			name: "out of range below",
			rule: "a position below the log start (retention deleted it) follows the out-of-range policy, earliest by default",
			in:   Input{Partitions: []int32{1}, Count: 2, Positions: map[int32]pos{1: mk(3, 2)}},
			want: map[int32]want{1: {10, ReasonOutOfRange, 2}},
		},
		{
			name: "out of range above",
			rule: "a position above the high watermark follows the out-of-range policy",
			in:   Input{Partitions: []int32{1}, Count: 2, Positions: map[int32]pos{1: mk(999, 2)}, OutOfRange: Latest},
			want: map[int32]want{1: {110, ReasonOutOfRange, 2}},
		},
		{
			name: "time clamped to log",
			rule: "a time offset below the log start is clamped to it",
			in:   Input{Partitions: []int32{1}, Count: 2, Initial: At(t0), Times: map[int64]map[int32]int64{t0.UnixMilli(): {1: 2}}},
			want: map[int32]want{1: {10, ReasonInitial, 2}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Topic = "orders"
			in.Start, in.End = logs(in.Partitions...)
			ds, err := Decide(in)
			require.NoError(t, err, tc.rule)
			require.Len(t, ds, len(tc.want), tc.rule)
			for i, d := range ds {
				assert.Equal(t, in.Partitions[i], d.Partition, "decisions come back in input order")
				assert.Equal(t, "orders", d.Topic)
				w := tc.want[d.Partition]
				assert.Equal(t, w.off, d.Offset, "%s: offset of p%d", tc.rule, d.Partition)
				assert.Equal(t, w.reason, d.Reason, "%s: reason of p%d", tc.rule, d.Partition)
				assert.Equal(t, w.base, d.Baseline, "%s: baseline of p%d", tc.rule, d.Partition)
				assert.Equal(t, d.Reason != ReasonCommitted, d.NeedsCommit(), "only a resumed position needs no commit")
				if stored, ok := in.Positions[d.Partition]; ok {
					assert.Equal(t, stored.Offset, d.Stored)
				} else {
					assert.Equal(t, int64(-1), d.Stored)
				}
			}
		})
	}
}

func TestDecideErrors(t *testing.T) {
	start, end := logs(0, 1)
	cases := []struct {
		name string
		in   Input
		code polykafka.ErrorCode
	}{
		{"initial none", Input{Partitions: []int32{0}, Count: 1, Initial: None}, polykafka.NotFound},
		{"new partition none", Input{Partitions: []int32{1}, Count: 2, Positions: map[int32]pos{0: mk(50, 1)}, NewPartitions: None}, polykafka.NotFound},
		{"out of range none", Input{Partitions: []int32{0}, Count: 1, Positions: map[int32]pos{0: mk(999, 1)}, OutOfRange: None}, polykafka.OffsetOutOfRange},
		{"missing time offsets", Input{Partitions: []int32{0}, Count: 1, Initial: At(time.Unix(5, 0))}, polykafka.NotFound},
		{"missing log offsets", Input{Partitions: []int32{7}, Count: 8}, polykafka.Unknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Topic = "orders"
			in.Start, in.End = start, end
			_, err := Decide(in)
			require.Error(t, err)
			assert.Equal(t, tc.code, polykafka.Code(err), "error: %v", err)
			assert.Contains(t, err.Error(), "orders/", "the error names the partition")
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	require.NoError(t, Latest.Validate("Initial"))
	require.NoError(t, Policy{}.Validate("Initial"))
	err := Policy{Kind: PolicyTime}.Validate("Initial")
	require.ErrorContains(t, err, "Initial")
	require.ErrorContains(t, Policy{Kind: 99}.Validate("OutOfRange"), "OutOfRange")
	assert.Equal(t, []int64{1000}, TimesNeeded(Latest, At(time.Unix(1, 0)), At(time.Unix(1, 0))))
}
