package admin

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// WriteTo writes the plan as a table, one line per partition:
//
//	reset of group "billing" to earliest: 2 partitions
//	TOPIC   PARTITION  CURRENT  NEW  LOG   LAG      CHANGE  METADATA            REASON
//	orders  1          10       0    0-10  0 -> 10  +10     kept                earliest
//	orders  2          -        0    0-10  - -> 10  -       baseline=3 (group)  earliest
//
// CURRENT is "-" for a partition without a position; LOG is the log start
// offset and high watermark; LAG is the records left to read before and
// after the reset; CHANGE is their difference (positive: records the group
// will read again). METADATA says whether the
// position's metadata is kept or which baseline a new position records.
func (p *ResetPlan) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	n := len(p.Rows)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(cw, "reset of group %q to %s: %d partition%s\n", p.Group, p.Target, n, plural)
	if n > 0 {
		tw := tabwriter.NewWriter(cw, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT\tNEW\tLOG\tLAG\tCHANGE\tMETADATA\tREASON")
		for _, r := range p.Rows {
			cur, before, change := "-", "-", "-"
			if r.Current >= 0 {
				cur = strconv.FormatInt(r.Current, 10)
				before = strconv.FormatInt(max(r.LogEnd-r.Current, 0), 10)
			}
			if d, ok := r.LagChange(); ok {
				change = fmt.Sprintf("%+d", d)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d-%d\t%s -> %d\t%s\t%s\t%s\n", r.Topic, r.Partition, cur, r.New,
				r.LogStart, r.LogEnd, before, r.LogEnd-r.New, change, r.metadataText(), r.Reason)
		}
		_ = tw.Flush()
	}
	return cw.n, cw.err
}

func (r Row) metadataText() string {
	switch {
	case r.MetadataKept:
		return "kept"
	case r.Baseline > 0:
		return fmt.Sprintf("baseline=%d (%s)", r.Baseline, r.BaselineFrom)
	}
	return "no baseline (the group's positions record none)"
}

// String returns the table WriteTo writes.
func (p *ResetPlan) String() string {
	var b bytes.Buffer
	_, _ = p.WriteTo(&b)
	return b.String()
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.err = err
	return n, err
}
