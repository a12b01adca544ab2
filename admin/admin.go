// Package admin moves a consumer group's positions from outside the group,
// the way kafka-consumer-groups.sh --reset-offsets does, on any backend
// whose adapter implements [driver.Administrator], and without breaking
// the start-offset guarantee.
//
//	plan, err := admin.Plan(ctx, franz.New(conn), "billing", []string{"orders"}, admin.Earliest(), nil)
//	if err != nil { ... }
//	fmt.Print(plan)          // the table: partition, current, new, lag change, reason
//	err = plan.Apply(ctx)    // commits the new positions
//
// # Scope
//
// By default a reset covers every partition of the topics that has no
// position: the partitions the group has never committed, whose start the
// consumer would otherwise decide by its policies. [PlanOptions.Partitions]
// chooses partitions instead (with or without a position), and
// [PlanOptions.All] takes every partition of the topics.
//
// # The group must be inactive
//
// Kafka accepts a commit from outside the group (no generation, no member
// id) only while the group has no active member, and a running member
// would overwrite the new positions with its own anyway. Plan and Apply
// therefore refuse while the group has members, with an error whose code
// is [polykafka.FailedPrecondition] naming the group, its member count and
// its state; Apply checks again right before it commits, and a commit the
// broker refuses because a member joined in between gets the same error.
// Stop the group's consumers, reset, start them again.
//
// # The baseline is kept
//
// Each position carries the baseline of its topic in its commit metadata
// ("polykafka:v1:baseline=N", see offsetstore.EncodeMetadata), which the
// consumer needs to tell a partition created after the group started
// reading the topic from one a peer has not committed yet. A reset keeps
// the metadata of every partition that has a position; a partition
// without one gets the group's baseline for the topic (the smallest one
// recorded with its positions, as discovery.Baseline computes it), or, if
// the group never read the topic, the topic's current partition count, as
// a consumer starting now would record. If the group's positions in a
// topic were all written by another client (no baseline), new positions
// record none either, so that the consumer keeps treating the topic's
// uncommitted partitions as new. So a consumer started after a reset
// still classifies every partition as the decision table says.
//
// # Offsets
//
// Every new offset lies in the partition's log, between its log start
// offset and its high watermark: an explicit offset outside it is clamped,
// and a time after the last record resolves to the high watermark.
//
// # Errors
//
// Errors are *polykafka.Error values. A backend without
// driver.Administrator fails with Unimplemented, a missing topic with
// NotFound, invalid arguments (a partition the topic does not have, a
// zero Target) with InvalidArgument, an active group with
// FailedPrecondition; the backend's errors keep their classification.
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/driver"
	"github.com/polykafka/polykafka/discovery"
	"github.com/polykafka/polykafka/internal/errs"
	"github.com/polykafka/polykafka/offsetstore"
)

// PlanOptions are the optional settings of [Plan]. A nil *PlanOptions means
// all defaults.
type PlanOptions struct {
	// Partitions are the partitions to reset, with or without a position;
	// each must be a partition of one of the topics. Nil (or empty) means
	// every partition of the topics that has no position.
	Partitions []polykafka.TopicPartition
	// All resets every partition of the topics, with or without a
	// position. It cannot be combined with Partitions. False means the
	// scope Partitions gives.
	All bool
	// Logger receives the backend's logs and one info line per applied
	// reset. Nil means discard.
	Logger *slog.Logger
}

// ResetPlan is what a reset would write: one [Row] per partition in scope.
// Plan builds it from the cluster's state without writing anything;
// Apply writes it.
type ResetPlan struct {
	// Group is the consumer group.
	Group string
	// Target is where the positions move.
	Target Target
	// Rows are the partitions in scope, sorted by topic and partition.
	Rows []Row

	b      driver.Backend
	logger *slog.Logger
}

// Row is the reset of one partition.
type Row struct {
	polykafka.TopicPartition
	// Current is the group's position before the reset, or -1 if it has
	// none.
	Current int64
	// New is the position the reset commits.
	New int64
	// LogStart and LogEnd are the partition's log start offset and high
	// watermark when the plan was made.
	LogStart, LogEnd int64
	// Metadata is the commit metadata written with New: the current
	// position's, or one recording Baseline.
	Metadata string
	// MetadataKept says Metadata is the current position's, unchanged.
	MetadataKept bool
	// Baseline is the baseline Metadata records, or 0 if none.
	Baseline int32
	// BaselineFrom says where a new baseline came from: "group" (the
	// baseline of the group's positions in the topic), "partition count"
	// (the group never read the topic), "none" (the group's positions in
	// the topic record none), or "" when the metadata is kept.
	BaselineFrom string
	// Reason says how New was chosen, for example "earliest" or
	// "offset 500 clamped to the log end".
	Reason string
}

// LagChange is how many more records the group will read from the
// partition after the reset (negative: fewer), or false if it had no
// position before.
func (r Row) LagChange() (int64, bool) {
	if r.Current < 0 {
		return 0, false
	}
	return r.Current - r.New, true
}

const closeTimeout = 10 * time.Second

// Plan reads group's positions in topics and the partitions' logs, and
// returns the reset to target that Apply would commit. It writes nothing:
// printing the plan is a dry run. It refuses while the group has active
// members (code FailedPrecondition), like kafka-consumer-groups.sh.
func Plan(ctx context.Context, b driver.Backend, group string, topics []string, target Target, opts *PlanOptions) (*ResetPlan, error) {
	const op = "admin: Plan"
	var o PlanOptions
	if opts != nil {
		o = *opts
	}
	if err := validate(b, group, topics, target, o); err != nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, err.Error(), nil)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &ResetPlan{Group: group, Target: target, b: b, logger: logger}
	err := withAdmin(ctx, op, b, logger, func(a driver.Admin, wrap func(error) error) error {
		if err := checkInactive(ctx, op, a, group, wrap); err != nil {
			return err
		}
		counts, err := a.PartitionCounts(ctx, topics)
		if err != nil {
			return wrap(err)
		}
		for _, tp := range o.Partitions {
			if tp.Partition >= counts[tp.Topic] {
				return polykafka.NewError(polykafka.InvalidArgument, op,
					fmt.Sprintf("PlanOptions.Partitions: %s does not exist: %s has %d partitions", tp, tp.Topic, counts[tp.Topic]), nil)
			}
		}
		stored, err := a.Committed(ctx, group, topics)
		if err != nil {
			return wrap(err)
		}
		p.Rows = scope(topics, counts, stored, o)
		if len(p.Rows) == 0 {
			return nil
		}
		return wrap(p.resolve(ctx, a, counts, stored))
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func validate(b driver.Backend, group string, topics []string, target Target, o PlanOptions) error {
	switch {
	case b == nil:
		return errors.New("backend is nil")
	case group == "":
		return errors.New("group is empty")
	case len(topics) == 0:
		return errors.New("topics is empty")
	case o.All && len(o.Partitions) > 0:
		return errors.New("PlanOptions: All and Partitions cannot be combined")
	}
	for i, t := range topics {
		if t == "" {
			return fmt.Errorf("topics[%d] is empty", i)
		}
		if slices.Contains(topics[:i], t) {
			return fmt.Errorf("topics[%d]: %q is listed twice", i, t)
		}
	}
	for i, tp := range o.Partitions {
		if !slices.Contains(topics, tp.Topic) {
			return fmt.Errorf("PlanOptions.Partitions[%d]: topic %q is not one of the topics", i, tp.Topic)
		}
		if tp.Partition < 0 {
			return fmt.Errorf("PlanOptions.Partitions[%d]: partition %d is negative", i, tp.Partition)
		}
		if slices.Contains(o.Partitions[:i], tp) {
			return fmt.Errorf("PlanOptions.Partitions[%d]: %s is listed twice", i, tp)
		}
	}
	return target.validate()
}

// withAdmin opens an admin client on b, runs fn with it and closes it.
func withAdmin(ctx context.Context, op string, b driver.Backend, logger *slog.Logger, fn func(a driver.Admin, wrap func(error) error) error) error {
	ad, ok := b.(driver.Administrator)
	if !ok {
		return polykafka.NewError(polykafka.Unimplemented, op,
			"backend "+strconv.Quote(b.Name())+" has no admin client (driver.Administrator)", nil)
	}
	a, err := ad.OpenAdmin(ctx, driver.AdminConfig{Logger: logger})
	if err != nil {
		return errs.Wrap(op, err, polykafka.Code)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = a.Close(cctx)
	}()
	wrap := func(err error) error {
		return errs.Wrap(op, err, func(err error) polykafka.ErrorCode {
			if code := polykafka.Code(err); code != polykafka.Unknown {
				return code
			}
			return a.ErrorCode(err)
		})
	}
	return fn(a, wrap)
}

// checkInactive refuses while group has active members.
func checkInactive(ctx context.Context, op string, a driver.Admin, group string, wrap func(error) error) error {
	st, err := a.GroupState(ctx, group)
	if err != nil {
		return wrap(err)
	}
	if st.Members > 0 {
		return activeError(op, group, st)
	}
	return nil
}

func activeError(op, group string, st driver.GroupState) error {
	members := "1 active member"
	if st.Members != 1 {
		members = strconv.Itoa(st.Members) + " active members"
	}
	return polykafka.NewError(polykafka.FailedPrecondition, op, fmt.Sprintf(
		"group %q has %s (state %s): positions can be reset only while the group is inactive; stop its consumers first",
		group, members, st.State), nil)
}

// scope returns the rows in scope, sorted, with Current filled in.
func scope(topics []string, counts map[string]int32, stored map[polykafka.TopicPartition]polykafka.CommittedOffset, o PlanOptions) []Row {
	var tps []polykafka.TopicPartition
	if len(o.Partitions) > 0 {
		tps = slices.Clone(o.Partitions)
	} else {
		for _, t := range topics {
			for p := range counts[t] {
				tp := polykafka.TopicPartition{Topic: t, Partition: p}
				if _, has := stored[tp]; o.All || !has {
					tps = append(tps, tp)
				}
			}
		}
	}
	slices.SortFunc(tps, func(a, b polykafka.TopicPartition) int {
		if a.Topic != b.Topic {
			if a.Topic < b.Topic {
				return -1
			}
			return 1
		}
		return int(a.Partition - b.Partition)
	})
	rows := make([]Row, len(tps))
	for i, tp := range tps {
		rows[i] = Row{TopicPartition: tp, Current: -1}
		if c, ok := stored[tp]; ok && c.Offset >= 0 {
			rows[i].Current = c.Offset
		}
	}
	return rows
}

// resolve fills in the log offsets, the new offsets and the metadata.
func (p *ResetPlan) resolve(ctx context.Context, a driver.Admin, counts map[string]int32, stored map[polykafka.TopicPartition]polykafka.CommittedOffset) error {
	tps := make([]polykafka.TopicPartition, len(p.Rows))
	for i, r := range p.Rows {
		tps[i] = r.TopicPartition
	}
	start, err := a.ListOffsets(ctx, tps, polykafka.OffsetEarliest)
	if err != nil {
		return err
	}
	end, err := a.ListOffsets(ctx, tps, polykafka.OffsetLatest)
	if err != nil {
		return err
	}
	var at map[polykafka.TopicPartition]int64
	if p.Target.kind == targetTime {
		if at, err = a.ListOffsets(ctx, tps, p.Target.time.UnixMilli()); err != nil {
			return err
		}
	}
	positions := make(map[string]map[int32]offsetstore.Position)
	for tp, c := range stored {
		if positions[tp.Topic] == nil {
			positions[tp.Topic] = make(map[int32]offsetstore.Position)
		}
		positions[tp.Topic][tp.Partition] = offsetstore.Position{Offset: c.Offset, Baseline: offsetstore.DecodeMetadata(c.Metadata)}
	}
	for i := range p.Rows {
		r := &p.Rows[i]
		r.LogStart, r.LogEnd = start[r.TopicPartition], end[r.TopicPartition]
		r.New, r.Reason = p.Target.resolve(r.LogStart, r.LogEnd, at[r.TopicPartition])
		if c, ok := stored[r.TopicPartition]; ok {
			r.Metadata, r.MetadataKept = c.Metadata, true
			r.Baseline = offsetstore.DecodeMetadata(c.Metadata)
			continue
		}
		pos := positions[r.Topic]
		switch b := discovery.Baseline(pos); {
		case b > 0:
			r.Baseline, r.BaselineFrom = b, "group"
		case len(pos) == 0:
			r.Baseline, r.BaselineFrom = counts[r.Topic], "partition count"
		default:
			r.BaselineFrom = "none"
		}
		r.Metadata = offsetstore.EncodeMetadata(r.Baseline)
	}
	return nil
}

// resolve returns the offset t means in a log [start, end], and why. at is
// the offset listed for a time target (-1: no record at or after it).
func (t Target) resolve(start, end, at int64) (int64, string) {
	switch t.kind {
	case targetEarliest:
		return start, "earliest"
	case targetLatest:
		return end, "latest"
	case targetTime:
		switch {
		case at < 0 || at > end:
			return end, t.String() + ": no record at or after it, latest"
		case at < start:
			return start, t.String() + ": clamped to the log start"
		}
		return at, t.String()
	}
	switch {
	case t.offset < start:
		return start, t.String() + " clamped to the log start"
	case t.offset > end:
		return end, t.String() + " clamped to the log end"
	}
	return t.offset, t.String()
}

// Apply commits the plan's positions for the group, in one OffsetCommit
// request outside any generation. It checks first that the group still
// has no active member, and refuses with FailedPrecondition otherwise (as
// it does if the broker refuses the commit because a member joined in
// between). A plan with no rows commits nothing. Apply does not check
// that positions did not move since Plan: nothing moves them while the
// group is inactive.
func (p *ResetPlan) Apply(ctx context.Context) error {
	const op = "admin: Apply"
	if p == nil || p.b == nil {
		return polykafka.NewError(polykafka.InvalidArgument, op, "the plan was not made by Plan", nil)
	}
	if len(p.Rows) == 0 {
		return nil
	}
	offsets := make(map[polykafka.TopicPartition]polykafka.CommittedOffset, len(p.Rows))
	for _, r := range p.Rows {
		offsets[r.TopicPartition] = polykafka.CommittedOffset{Offset: r.New, Metadata: r.Metadata}
	}
	return withAdmin(ctx, op, p.b, p.logger, func(a driver.Admin, wrap func(error) error) error {
		if err := checkInactive(ctx, op, a, p.Group, wrap); err != nil {
			return err
		}
		if err := a.CommitAsAdmin(ctx, p.Group, offsets); err != nil {
			err = wrap(err)
			if polykafka.Code(err) == polykafka.Rebalancing {
				// The broker refuses a commit outside any generation
				// while the group has members: one joined since the check.
				if st, serr := a.GroupState(ctx, p.Group); serr == nil && st.Members > 0 {
					return activeError(op, p.Group, st)
				}
			}
			return err
		}
		for _, r := range p.Rows {
			p.logger.Info("polykafka: position reset", "group", p.Group, "topic", r.Topic, "partition", r.Partition,
				"from", r.Current, "to", r.New, "reason", r.Reason)
		}
		return nil
	})
}

var _ io.WriterTo = (*ResetPlan)(nil)
