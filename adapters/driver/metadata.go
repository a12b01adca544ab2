package driver

import "time"

// LeaderMetadataWait bounds how long a group leader waits, before it plans
// the assignment, for its metadata to show the partitions that members
// reported in their JoinGroup user data (see the package doc's "Group
// protocol"). After it, the leader plans with what it sees: Rejoin only
// shortens a wait, correctness never depends on it.
const LeaderMetadataWait = 10 * time.Second

// AwaitLeaderMetadata is the leader's wait, for adapters whose client plans
// through a balancer of theirs: until fresh reports true, it calls refresh
// (which asks the client for metadata) and waits backoff(n) after the n-th
// refresh, with the client's own metadata retry backoff, for at most
// LeaderMetadataWait. It reports whether fresh reported true. Balancers
// have no context: the bound is the deadline.
func AwaitLeaderMetadata(fresh func() bool, refresh func(), backoff func(n int) time.Duration) bool {
	deadline := time.Now().Add(LeaderMetadataWait)
	for n := 1; ; n++ {
		if fresh() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		refresh()
		if fresh() {
			return true
		}
		time.Sleep(min(max(backoff(n), time.Millisecond), left))
	}
}
