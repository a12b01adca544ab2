package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka/internal/testcluster"
)

func runtimeGoroutines() int { return runtime.NumGoroutine() }

// diagnose prints what is known of the lost ids: per partition, how many
// and which offsets; for the first 20, when each was acknowledged, the
// events around then, whether the broker's log holds it at its offset and
// the group's committed offset of its partition.
func diagnose(log io.Writer, tc *testcluster.Cluster, topic, group string, led *ledger, ev *events, k counts) {
	type span struct {
		n        int
		min, max int64
	}
	byPart := make(map[int32]*span)
	for _, id := range k.lostIDs {
		p, off, _ := led.ack(id)
		s := byPart[p]
		if s == nil {
			s = &span{min: off, max: off}
			byPart[p] = s
		}
		s.n++
		s.min, s.max = min(s.min, off), max(s.max, off)
	}
	parts := make([]int32, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	committed := make(map[int32]int64)
	if offs, err := tc.Admin().FetchOffsets(ctx, group); err != nil {
		fmt.Fprintf(log, "group %s committed offsets: %v\n", group, err)
	} else {
		for p, o := range offs[topic] {
			committed[p] = o.At
		}
	}
	skipped := 0
	for _, id := range k.lostIDs {
		p, off, _ := led.ack(id)
		if c, ok := committed[p]; ok && c > off {
			skipped++
		}
	}
	fmt.Fprintf(log, "\nLOST %d acknowledged records: %d below the group's committed offset of their partition (skipped), %d at or above it (never reached: the group stalled)\n",
		k.lost, skipped, k.lost-skipped)
	for _, p := range parts {
		s := byPart[p]
		c, ok := committed[p]
		commit := "none"
		if ok {
			commit = fmt.Sprint(c)
		}
		fmt.Fprintf(log, "  partition %d: %d records, offsets %d..%d, group committed %s\n", p, s.n, s.min, s.max, commit)
	}
	for i, id := range k.lostIDs {
		if i == 20 {
			fmt.Fprintf(log, "  ... and %d more\n", len(k.lostIDs)-20)
			break
		}
		p, off, at := led.ack(id)
		c, ok := committed[p]
		commit := "none"
		if ok {
			commit = fmt.Sprint(c)
		}
		fmt.Fprintf(log, "lost id %d: partition %d offset %d, acknowledged at +%v; the log holds %s there; group committed %s on the partition\n",
			id, p, off, at.Round(time.Millisecond), readAt(ctx, tc, topic, p, off), commit)
		for _, e := range ev.around(at, 15*time.Second, 5*time.Second) {
			fmt.Fprintf(log, "    [+%v] %s\n", e.at.Round(time.Millisecond), e.text)
		}
	}
}

// readAt returns the value of the record at topic/partition/offset, read
// with a plain franz-go client, or what went wrong.
func readAt(ctx context.Context, tc *testcluster.Cluster, topic string, partition int32, offset int64) string {
	cl, err := kgo.NewClient(kgo.SeedBrokers(tc.Brokers()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(offset)}}))
	if err != nil {
		return err.Error()
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for rctx.Err() == nil {
		fs := cl.PollFetches(rctx)
		for _, r := range fs.Records() {
			if r.Offset == offset {
				return fmt.Sprintf("value %q", r.Value)
			}
			if r.Offset > offset {
				return fmt.Sprintf("no record (next is offset %d)", r.Offset)
			}
		}
	}
	return "nothing readable within 10s"
}
