// Package redisstore is an [offsetstore.Store] on Redis, through
// github.com/redis/go-redis/v9: a consumer group's positions and baselines
// kept outside Kafka, for applications that manage offsets themselves. It
// is its own package so that an application that does not import it never
// compiles go-redis.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	store, err := redisstore.New(rdb, nil)
//	if err != nil { ... }
//	c, err := consumer.New(ctx, backend, "orders-app", []string{"orders"},
//		&consumer.Options{Store: store})
//
// The start-offset guarantee holds as with the Kafka store: start decisions
// are saved here before the first record of a partition is handed out, and
// every position carries its topic's baseline.
//
// # Keys
//
// One Redis hash per group and topic:
//
//	key:   <prefix>:{<group>}:<topic>     e.g. polykafka:{orders-app}:orders
//	field: <partition>                    decimal, e.g. 7
//	value: <offset>:<baseline>            decimal, e.g. 1500:4 (baseline 0: unknown)
//
// The prefix is [Options.Prefix] ("polykafka" by default). In the group,
// '%', '{' and '}' are written %25, %7B and %7D, so the braces around the
// group are always a Redis Cluster hash tag: every key of a group lives in
// one hash slot, which lets one script write several topics at once on a
// cluster too. [Store.Key] returns the key of a group and topic.
//
// Keys never expire: unlike Kafka, which deletes the commits of a group
// left empty longer than offsets.retention.minutes, Redis keeps positions
// until they are deleted. Deleting a group's keys makes it new again (its
// initial policy applies at the next start).
//
// # Atomicity
//
// Each [Store.Save] is one Lua script (EVALSHA, EVAL when the script is not
// cached yet) that first checks that every key it will write is a hash or
// absent, and only then sets the fields of the named partitions (HSET).
// Redis runs a script with no other command in between, so a Save is all
// or nothing (short of Redis running out of memory in the middle of it),
// and it is isolated from the Saves of every other member.
//
// A Save sets exactly the partitions it names and never reads and writes
// back the others: two members saving different partitions of one topic at
// the same time never lose each other's writes, and no member can move a
// partition it does not own back to a value it read earlier. That is the
// accident a hand-made store (read the topic's positions, change some,
// write them all back) has, and this store cannot have.
//
// A Save of a partition replaces its position, also with a smaller offset:
// the last writer wins. This is deliberate, not an accident: the consumer
// moves a position backwards on purpose when it was out of range (a
// truncated or recreated log resets to earliest, or to a timestamp, per
// Options.OutOfRange), and an operator's reset may do so too. A store that
// refused to go backwards would keep the stale position there, and the next
// start would resume past records never read. The consumer itself only
// ever commits a partition forward while it owns it (processed offsets are
// monotonic and it stops committing a partition once it is revoked or lost).
//
// Redis knows nothing of group generations, so unlike Kafka it cannot
// refuse the commit of a member that was expelled from the group without
// noticing yet; such a member stops committing as soon as it learns it
// lost its partitions (the consumer cancels a commit in flight then), so
// the window is one Save.
//
// # Errors
//
// Every error is a *polykafka.Error (context errors excepted, returned
// as they are), so [polykafka.Code] and [polykafka.IsRetryable] classify
// it:
//
//   - InvalidArgument: a bad argument, naming it (an empty group or
//     topic, a negative partition, offset or baseline, a nil client, a bad
//     Options.Prefix), or a key of this store's layout that holds another
//     Redis type (choose another Options.Prefix).
//   - Unavailable: Redis cannot be reached or cannot serve now: connection
//     refused or reset, timeouts, LOADING, BUSY, READONLY, MASTERDOWN,
//     CLUSTERDOWN, TRYAGAIN, OOM, a full connection pool. The consumer
//     retries these.
//   - PermissionDenied: NOAUTH, WRONGPASS, NOPERM.
//   - Closed: the client was closed.
//   - Unknown: anything else, such as a stored value this package did not
//     write.
//
// Nothing falls back silently: a failed Save or Load fails the consumer's
// commit or start decision with the error.
//
// Every call honours its context, whether or not the client was made with
// ContextTimeoutEnabled: when ctx ends first the call returns ctx.Err() at
// once, and the Redis command finishes (or fails) in the background within
// the client's own timeouts. A Save whose context ended may still have been
// applied, as with any network store.
package redisstore
