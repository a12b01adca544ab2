// Package crossbackend holds the cross-backend suite: tests that run
// members and producers of different backends against one cluster (the
// in-process kfake cluster, or KAFKA_BROKERS unchanged) and check what
// swapping a backend in place promises: a group with one member per
// backend, rolling migration from every backend to every other with zero
// loss and counted duplicates, keys that keep their partition when the
// producer's backend changes, and positions written by one backend read
// by every other. confluent takes part only in cgo builds.
package crossbackend
