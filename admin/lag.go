package admin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/offsetstore"
)

// LagOptions are the optional settings of [Lag]. A nil *LagOptions means
// all defaults. The policies are those of the group's consumers
// (consumer.Options): they say where a partition without a usable position
// would start, which is where its lag is counted from.
type LagOptions struct {
	// Initial is the initial policy. Zero means discovery.Latest.
	Initial discovery.Policy
	// NewPartitions is the new-partition policy. Zero means
	// discovery.Earliest.
	NewPartitions discovery.Policy
	// OutOfRange is the out-of-range policy. Zero means
	// discovery.Earliest.
	OutOfRange discovery.Policy
	// Logger receives the backend's logs. Nil means discard.
	Logger *slog.Logger
}

// GroupLag is a consumer group's lag in its topics, as
// kafka-consumer-groups.sh --describe shows it: one [LagRow] per
// partition.
type GroupLag struct {
	// Group is the consumer group.
	Group string
	// State is the group's state as the broker reports it (Empty, Stable,
	// ...), and Members its member count.
	State   string
	Members int
	// Rows are every partition of the topics, sorted by topic and
	// partition.
	Rows []LagRow
}

// LagRow is the lag of the group in one partition.
type LagRow struct {
	polykafka.TopicPartition
	// Current is the group's committed position, or -1 if it has none.
	Current int64
	// LogStart and LogEnd are the partition's log start offset and high
	// watermark.
	LogStart, LogEnd int64
	// Position is where the lag is counted from: Current if it lies in the
	// log, else where the decision table would start the partition.
	Position int64
	// Reason is the row of the decision table that gives Position
	// (committed, initial, new-partition, out-of-range).
	Reason discovery.Reason
	// Estimated flags a row whose Position is not a committed position
	// (no position, or one outside the log): the lag is counted from where
	// a consumer with the given policies would start the partition.
	Estimated bool
	// Lag is LogEnd - Position: the records the group has not read.
	Lag int64
}

// Total returns the sum of the rows' Lag.
func (g *GroupLag) Total() int64 {
	var n int64
	for _, r := range g.Rows {
		n += r.Lag
	}
	return n
}

// Lag reads group's positions in topics and the partitions' logs and
// returns the group's lag in every partition of the topics, like
// kafka-consumer-groups.sh --describe. Unlike it, a partition without a
// position (or with one outside the log) is not left blank: its lag is
// counted from where the start-offset decision table would start it with
// the options' policies, and the row is flagged Estimated. Lag writes
// nothing and works whether the group is active or not. Errors are as for
// [Plan]: Unimplemented without driver.Administrator, NotFound for a
// missing topic, InvalidArgument for bad arguments.
func Lag(ctx context.Context, b driver.Backend, group string, topics []string, opts *LagOptions) (*GroupLag, error) {
	const op = "admin: Lag"
	var o LagOptions
	if opts != nil {
		o = *opts
	}
	if err := validateLag(b, group, topics, o); err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, err.Error(), nil)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &GroupLag{Group: group}
	err := withAdmin(ctx, op, b, logger, func(a driver.Admin, wrap func(error) error) error {
		st, err := a.GroupState(ctx, group)
		if err != nil {
			return wrap(err)
		}
		g.State, g.Members = st.State, st.Members
		counts, err := a.PartitionCounts(ctx, topics)
		if err != nil {
			return wrap(err)
		}
		stored, err := a.Committed(ctx, group, topics)
		if err != nil {
			return wrap(err)
		}
		return wrap(g.resolve(ctx, a, topics, counts, stored, o))
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

func validateLag(b driver.Backend, group string, topics []string, o LagOptions) error {
	if err := validate(b, group, topics, Earliest(), PlanOptions{}); err != nil {
		return err
	}
	if err := o.Initial.Validate("LagOptions.Initial"); err != nil {
		return err
	}
	if err := o.NewPartitions.Validate("LagOptions.NewPartitions"); err != nil {
		return err
	}
	return o.OutOfRange.Validate("LagOptions.OutOfRange")
}

// resolve lists the logs and decides each partition as a consumer would.
func (g *GroupLag) resolve(ctx context.Context, a driver.Admin, topics []string, counts map[string]int32,
	stored map[polykafka.TopicPartition]polykafka.CommittedOffset, o LagOptions,
) error {
	var tps []polykafka.TopicPartition
	for _, t := range topics {
		for p := range counts[t] {
			tps = append(tps, polykafka.TopicPartition{Topic: t, Partition: p})
		}
	}
	if len(tps) == 0 {
		return nil
	}
	start, err := a.ListOffsets(ctx, tps, polykafka.OffsetEarliest)
	if err != nil {
		return err
	}
	end, err := a.ListOffsets(ctx, tps, polykafka.OffsetLatest)
	if err != nil {
		return err
	}
	for _, t := range topics {
		in := discovery.Input{
			Topic: t, Count: counts[t],
			Positions: make(map[int32]offsetstore.Position),
			Start:     make(map[int32]int64), End: make(map[int32]int64),
			Times:   make(map[int64]map[int32]int64),
			Initial: o.Initial, NewPartitions: o.NewPartitions, OutOfRange: o.OutOfRange,
		}
		for p := range counts[t] {
			tp := polykafka.TopicPartition{Topic: t, Partition: p}
			in.Partitions = append(in.Partitions, p)
			in.Start[p], in.End[p] = start[tp], end[tp]
			if c, ok := stored[tp]; ok {
				in.Positions[p] = offsetstore.Position{Offset: c.Offset, Baseline: offsetstore.DecodeMetadata(c.Metadata)}
			}
		}
		for _, ms := range discovery.TimesNeeded(o.Initial, o.NewPartitions, o.OutOfRange) {
			at, err := a.ListOffsets(ctx, topicPartitions(t, counts[t]), ms)
			if err != nil {
				return err
			}
			in.Times[ms] = make(map[int32]int64)
			for tp, off := range at {
				in.Times[ms][tp.Partition] = off
			}
		}
		ds, err := discovery.Decide(in)
		if err != nil {
			return err
		}
		for _, d := range ds {
			r := LagRow{TopicPartition: d.TopicPartition, Current: -1, LogStart: in.Start[d.Partition], LogEnd: in.End[d.Partition],
				Position: d.Offset, Reason: d.Reason, Estimated: d.Reason != discovery.ReasonCommitted}
			if c, ok := stored[d.TopicPartition]; ok && c.Offset >= 0 {
				r.Current = c.Offset
			}
			r.Lag = max(r.LogEnd-r.Position, 0)
			g.Rows = append(g.Rows, r)
		}
	}
	slices.SortFunc(g.Rows, func(a, b LagRow) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	return nil
}

func topicPartitions(topic string, n int32) []polykafka.TopicPartition {
	out := make([]polykafka.TopicPartition, n)
	for p := range n {
		out[p] = polykafka.TopicPartition{Topic: topic, Partition: p}
	}
	return out
}

// WriteTo writes the lag as a table, one line per partition, in the
// columns of kafka-consumer-groups.sh --describe plus the decision table's
// view:
//
//	group "billing" (Stable, 1 member): lag 25
//	TOPIC   PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG  FROM  REASON
//	orders  0          10              20              10   10    committed
//	orders  1          -               15              15   0     new-partition (estimated)
//
// CURRENT-OFFSET is "-" for a partition without a position; FROM is where
// LAG is counted from.
func (g *GroupLag) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	members := strconv.Itoa(g.Members) + " members"
	if g.Members == 1 {
		members = "1 member"
	}
	fmt.Fprintf(cw, "group %q (%s, %s): lag %d\n", g.Group, g.State, members, g.Total())
	if len(g.Rows) > 0 {
		tw := tabwriter.NewWriter(cw, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tFROM\tREASON")
		for _, r := range g.Rows {
			cur := "-"
			if r.Current >= 0 {
				cur = strconv.FormatInt(r.Current, 10)
			}
			reason := string(r.Reason)
			if r.Estimated {
				reason += " (estimated)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%s\n", r.Topic, r.Partition, cur, r.LogEnd, r.Lag, r.Position, reason)
		}
		_ = tw.Flush()
	}
	return cw.n, cw.err
}

// String returns the table WriteTo writes.
func (g *GroupLag) String() string {
	var b bytes.Buffer
	_, _ = g.WriteTo(&b)
	return b.String()
}

var _ io.WriterTo = (*GroupLag)(nil)
