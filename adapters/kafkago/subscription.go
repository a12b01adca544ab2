package kafkago

// The subscription a member sends in JoinGroup. kafka.ConsumerGroup
// encodes it as version, topics, user data and marks it version 1
// (consumergroup.go makeJoinGroupRequest), but version 1 of Kafka's
// ConsumerProtocolSubscription schema also has owned partitions, which
// kafka-go does not write (segmentio/kafka-go#1156, #762). A Java leader
// then fails with "Buffer underflow while parsing consumer protocol's
// subscription" and its process exits; librdkafka reports the same
// underflow (kafka-go#1128). The bytes kafka-go writes are exactly
// version 0 of the schema (version, topics, user data), so the adapter
// relabels them: on the group's connections (the same wrapped connections
// lost.go reads heartbeats on) each JoinGroup request is held until it is
// complete and the two version bytes of every subscription that parses
// exactly as version 0 are set to 0. The frame keeps its length, nothing
// else changes, and a subscription that does not have kafka-go's shape
// (a kafka-go that writes owned partitions) is left as it is.
//
// Why not move membership onto kafka.Client's JoinGroup/SyncGroup/
// Heartbeat/LeaveGroup, which encode version 1 correctly: that means
// reimplementing kafka.ConsumerGroup's generation lifecycle (join, sync,
// heartbeat loop, rebalance detection, leave) in the adapter, with the
// workarounds for kafka-go#646 and #1351 built on it, to fix two bytes.
// The eager "range" protocol the backends share uses none of the fields
// versions 1 to 3 add.

import "encoding/binary"

const apiJoinGroup = 11

// joinRelabeler follows the stream of requests written to a group
// connection and relabels the subscriptions of JoinGroup requests.
type joinRelabeler struct {
	buf  []byte // written bytes not handed on yet
	pass int    // bytes of the current non-JoinGroup frame still to hand on
	// member, if set, is told the member id of every JoinGroup and
	// SyncGroup request that carries one (lost.go: the id to leave with).
	member func(id string)
	// refuse, if set, is asked about every complete JoinGroup and
	// SyncGroup frame (after member): a frame it refuses is not handed
	// on, and dropped is set (lost.go: a closing group's connection is
	// cut instead of sending it).
	refuse  func() bool
	dropped bool
}

// process takes the bytes of one Write and returns the bytes to write now:
// every frame but JoinGroup passes at once (only a frame's first 6 bytes,
// size and api key, are held until they are all there); a JoinGroup frame
// is held until it is complete, then relabeled.
func (r *joinRelabeler) process(p []byte) []byte {
	r.buf = append(r.buf, p...)
	var out []byte
	for len(r.buf) > 0 {
		if r.pass > 0 {
			k := min(r.pass, len(r.buf))
			out = append(out, r.buf[:k]...)
			r.pass -= k
			r.buf = r.buf[k:]
			continue
		}
		if len(r.buf) < 6 {
			break
		}
		total := 4 + int(int32(binary.BigEndian.Uint32(r.buf)))
		if total < 6 { // not a request kafka-go writes: hand everything on
			r.pass = len(r.buf)
			continue
		}
		key := int16(binary.BigEndian.Uint16(r.buf[4:]))
		if key != apiJoinGroup && (key != apiSyncGroup || (r.member == nil && r.refuse == nil)) {
			r.pass = total
			continue
		}
		if len(r.buf) < total {
			break
		}
		var id string
		if key == apiJoinGroup {
			id = relabelJoin(r.buf[4:total])
		} else {
			id = syncMember(r.buf[4:total])
		}
		if id != "" && r.member != nil {
			r.member(id)
		}
		if r.refuse != nil && r.refuse() {
			r.dropped = true
			r.buf = r.buf[total:]
			continue
		}
		out = append(out, r.buf[:total]...)
		r.buf = r.buf[total:]
	}
	if len(r.buf) == 0 {
		r.buf = nil
	} else {
		r.buf = append([]byte(nil), r.buf...)
	}
	return out
}

// syncMember returns the member id of the SyncGroup request req (header
// and body, no size), or "" if it does not parse (kafka-go sends v0).
func syncMember(req []byte) string {
	rd := wireReader{b: req, ok: true}
	rd.skip(2)                              // api key
	if version := rd.int16(); version > 3 { // flexible versions
		return ""
	}
	rd.skip(4)          // correlation id
	rd.nullableString() // client id
	rd.nullableString() // group id
	rd.skip(4)          // generation id
	id := rd.nullableString()
	if !rd.ok {
		return ""
	}
	return id
}

// relabelJoin relabels, in place, the version-1 subscriptions of the
// JoinGroup request req (header and body, no size) that parse exactly as
// version 0, and returns the request's member id. Requests it does not
// understand are left alone.
func relabelJoin(req []byte) (member string) {
	rd := wireReader{b: req, ok: true}
	rd.skip(2) // api key
	version := rd.int16()
	if version > 5 { // flexible versions: kafka-go sends v1 or v2
		return ""
	}
	rd.skip(4)          // correlation id
	rd.nullableString() // client id
	rd.nullableString() // group id
	rd.skip(4)          // session timeout
	if version >= 1 {
		rd.skip(4) // rebalance timeout
	}
	member = rd.nullableString()
	if version >= 5 {
		rd.nullableString() // group instance id
	}
	protocolType := rd.nullableString()
	n := rd.int32()
	if !rd.ok || protocolType != "consumer" {
		return member
	}
	for i := int32(0); i < n && rd.ok; i++ {
		rd.nullableString() // protocol name
		size := rd.int32()
		start := rd.off
		rd.skip(int(size))
		if !rd.ok || size < 2 {
			return member
		}
		meta := req[start : start+int(size)]
		if binary.BigEndian.Uint16(meta) == 1 && isSubscriptionV0(meta) {
			binary.BigEndian.PutUint16(meta, 0)
		}
	}
	return member
}

// isSubscriptionV0 reports whether meta is exactly a version-0
// ConsumerProtocolSubscription (version, topics, user data) and nothing
// more, whatever version it declares.
func isSubscriptionV0(meta []byte) bool {
	rd := wireReader{b: meta, ok: true}
	rd.skip(2)
	n := rd.int32()
	for i := int32(0); i < n && rd.ok; i++ {
		rd.nullableString()
	}
	if size := rd.int32(); size > 0 {
		rd.skip(int(size))
	}
	return rd.ok && rd.off == len(meta)
}

// wireReader reads the non-flexible Kafka encoding; ok turns false at the
// first read past the end.
type wireReader struct {
	b   []byte
	off int
	ok  bool
}

func (r *wireReader) skip(n int) {
	if !r.okAt(n) {
		return
	}
	r.off += n
}

func (r *wireReader) okAt(n int) bool {
	if !r.ok || n < 0 || len(r.b)-r.off < n {
		r.ok = false
	}
	return r.ok
}

func (r *wireReader) int16() int16 {
	if !r.okAt(2) {
		return 0
	}
	v := int16(binary.BigEndian.Uint16(r.b[r.off:]))
	r.off += 2
	return v
}

func (r *wireReader) int32() int32 {
	if !r.okAt(4) {
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b[r.off:]))
	r.off += 4
	return v
}

// nullableString reads a string or a null one (length -1, read as "").
func (r *wireReader) nullableString() string {
	n := int(r.int16())
	if n <= 0 || !r.okAt(n) {
		return ""
	}
	s := string(r.b[r.off : r.off+n])
	r.off += n
	return s
}
