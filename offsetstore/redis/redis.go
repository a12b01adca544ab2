package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/internal/errs"
	"github.com/polykafka/polykafka/offsetstore"
)

// DefaultPrefix is the key prefix when Options.Prefix is empty.
const DefaultPrefix = "polykafka"

// Options configure a Store. A nil *Options means all defaults.
type Options struct {
	// Prefix is the first part of every key ("<prefix>:{<group>}:<topic>",
	// see the package documentation). Empty means DefaultPrefix
	// ("polykafka"). It must not contain '{' or '}', which would break the
	// hash tag that keeps a group's keys in one Redis Cluster slot.
	Prefix string
}

// Store is an offsetstore.Store on Redis. It is safe for concurrent use by
// any number of goroutines and processes, and accepts any group. Create it
// with [New].
type Store struct {
	client redis.UniversalClient
	prefix string
}

var _ offsetstore.Store = (*Store)(nil)

// New returns a store that keeps positions in client, which it uses but
// does not own: close the client after the last consumer using the store
// is closed. New does not contact Redis; the first Load or Save does.
func New(client redis.UniversalClient, opts *Options) (*Store, error) {
	const op = "redisstore: New"
	if client == nil {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "client is nil", nil)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return nil, polykafka.NewError(polykafka.InvalidArgument, op,
			"Options.Prefix: "+strconv.Quote(o.Prefix)+" contains '{' or '}'", nil)
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	return &Store{client: client, prefix: o.Prefix}, nil
}

// groupEscaper keeps the hash tag intact whatever the group's name.
var groupEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

// Key returns the Redis key of the hash that holds group's positions in
// topic: "<prefix>:{<group>}:<topic>", with '%', '{' and '}' of the group
// escaped (see the package documentation).
func (s *Store) Key(group, topic string) string {
	return s.prefix + ":{" + groupEscaper.Replace(group) + "}:" + topic
}

// Load implements offsetstore.Store: one HGETALL of the group's hash for
// topic.
func (s *Store) Load(ctx context.Context, group, topic string) (map[int32]offsetstore.Position, error) {
	const op = "redisstore: Load"
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case group == "":
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "group is empty", nil)
	case topic == "":
		return nil, polykafka.NewError(polykafka.InvalidArgument, op, "topic is empty", nil)
	}
	key := s.Key(group, topic)
	fields, err := call(ctx, func(ctx context.Context) (map[string]string, error) {
		return s.client.HGetAll(ctx, key).Result()
	})
	if err != nil {
		return nil, classify(op, err)
	}
	out := make(map[int32]offsetstore.Position, len(fields))
	for f, v := range fields {
		p, pos, err := decode(f, v)
		if err != nil {
			return nil, polykafka.NewError(polykafka.Unknown, op,
				fmt.Sprintf("key %q field %q holds %q, which this store did not write", key, f, v), err)
		}
		out[p] = pos
	}
	return out, nil
}

// saveScript writes the positions of one Save. KEYS are the hashes to
// write, one per topic; ARGV holds, for each key in order, the number of
// its fields n and then n pairs of field and value. It checks the type of
// every key before it writes anything, so that it is all or nothing.
var saveScript = redis.NewScript(`
for k = 1, #KEYS do
	local t = redis.call('TYPE', KEYS[k]).ok
	if t ~= 'hash' and t ~= 'none' then
		return redis.error_reply('WRONGTYPE polykafka: key ' .. KEYS[k] .. ' holds a ' .. t .. ', not a hash of positions')
	end
end
local i = 1
for k = 1, #KEYS do
	local n = tonumber(ARGV[i])
	i = i + 1
	for _ = 1, n do
		redis.call('HSET', KEYS[k], ARGV[i], ARGV[i + 1])
		i = i + 2
	end
end
return #KEYS
`)

// Save implements offsetstore.Store. It is all or nothing: one Lua script
// sets every position it is given, and only those (see # Atomicity in the
// package documentation). A smaller offset replaces a larger one.
func (s *Store) Save(ctx context.Context, group string, positions map[polykafka.TopicPartition]offsetstore.Position) error {
	const op = "redisstore: Save"
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validate(op, group, positions); err != nil {
		return err
	}
	if len(positions) == 0 {
		return nil
	}
	byTopic := make(map[string][]polykafka.TopicPartition)
	for tp := range positions {
		byTopic[tp.Topic] = append(byTopic[tp.Topic], tp)
	}
	topics := slices.Sorted(func(yield func(string) bool) {
		for t := range byTopic {
			if !yield(t) {
				return
			}
		}
	})
	keys := make([]string, 0, len(topics))
	args := make([]any, 0, len(topics)+2*len(positions))
	for _, topic := range topics {
		tps := byTopic[topic]
		slices.SortFunc(tps, func(a, b polykafka.TopicPartition) int { return int(a.Partition) - int(b.Partition) })
		keys = append(keys, s.Key(group, topic))
		args = append(args, len(tps))
		for _, tp := range tps {
			p := positions[tp]
			args = append(args, strconv.Itoa(int(tp.Partition)), encode(p))
		}
	}
	_, err := call(ctx, func(ctx context.Context) (any, error) {
		return saveScript.Run(ctx, s.client, keys, args...).Result()
	})
	if err != nil {
		return classify(op, err)
	}
	return nil
}

// encode returns the hash value of p: "<offset>:<baseline>".
func encode(p offsetstore.Position) string {
	return strconv.FormatInt(p.Offset, 10) + ":" + strconv.FormatInt(int64(p.Baseline), 10)
}

// decode parses one hash field and value written by encode.
func decode(field, value string) (int32, offsetstore.Position, error) {
	p, err := strconv.ParseInt(field, 10, 32)
	if err != nil || p < 0 {
		return 0, offsetstore.Position{}, fmt.Errorf("bad partition %q", field)
	}
	off, base, ok := strings.Cut(value, ":")
	if !ok {
		return 0, offsetstore.Position{}, errors.New("no ':' between offset and baseline")
	}
	o, err := strconv.ParseInt(off, 10, 64)
	if err != nil || o < 0 {
		return 0, offsetstore.Position{}, fmt.Errorf("bad offset %q", off)
	}
	b, err := strconv.ParseInt(base, 10, 32)
	if err != nil || b < 0 {
		return 0, offsetstore.Position{}, fmt.Errorf("bad baseline %q", base)
	}
	return int32(p), offsetstore.Position{Offset: o, Baseline: int32(b)}, nil
}

// validate checks the arguments of a Save, with the messages of the stores
// of package offsetstore.
func validate(op, group string, positions map[polykafka.TopicPartition]offsetstore.Position) error {
	if group == "" {
		return polykafka.NewError(polykafka.InvalidArgument, op, "group is empty", nil)
	}
	for tp, p := range positions {
		switch {
		case tp.Topic == "":
			return polykafka.NewError(polykafka.InvalidArgument, op, "position with an empty topic", nil)
		case tp.Partition < 0:
			return polykafka.NewError(polykafka.InvalidArgument, op, "negative partition in "+tp.String(), nil)
		case p.Offset < 0:
			return polykafka.NewError(polykafka.InvalidArgument, op, "negative offset for "+tp.String(), nil)
		case p.Baseline < 0:
			return polykafka.NewError(polykafka.InvalidArgument, op, "negative baseline for "+tp.String(), nil)
		}
	}
	return nil
}

// call runs fn and returns its result, or ctx.Err() as soon as ctx ends:
// go-redis bounds a command by ctx only when the client was made with
// ContextTimeoutEnabled, and by its own read and write timeouts otherwise.
// A command cut short finishes in the background within those timeouts.
func call[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := fn(ctx)
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil && ctx.Err() != nil {
			var zero T
			return zero, ctx.Err()
		}
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// classify wraps err, an error of go-redis, in a *polykafka.Error with its
// code (context errors are returned as they are).
func classify(op string, err error) error {
	return polykafka.NewError(code(err), op, "", err)
}

// Server error prefixes by class.
var (
	unavailablePrefixes = []string{"LOADING", "BUSY", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "OOM", "NOREPLICAS"}
	permissionPrefixes  = []string{"NOAUTH", "WRONGPASS", "NOPERM"}
)

// code classifies an error of go-redis.
func code(err error) polykafka.ErrorCode {
	var rerr redis.Error
	switch {
	case errors.Is(err, redis.ErrClosed):
		return polykafka.Closed
	case errors.As(err, &rerr):
		msg := rerr.Error()
		for _, p := range unavailablePrefixes {
			if strings.HasPrefix(msg, p) {
				return polykafka.Unavailable
			}
		}
		for _, p := range permissionPrefixes {
			if strings.HasPrefix(msg, p) {
				return polykafka.PermissionDenied
			}
		}
		if strings.HasPrefix(msg, "WRONGTYPE") {
			return polykafka.InvalidArgument
		}
		return polykafka.Unknown
	case errs.Transport(err),
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return polykafka.Unavailable
	}
	return polykafka.Unknown
}
