// Command kfakebroker runs an in-memory kfake cluster in its own process,
// for benchmarks that must not share a process (and a garbage collector)
// with the broker:
//
//	taskset -c 1 go run ./internal/cmd/kfakebroker -brokers 3 &
//	taskset -c 0 go run ./internal/cmd/pkbench -brokers 127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094
//	KAFKA_BROKERS=127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094 taskset -c 0 \
//		go test -run '^$' -bench 'Produce|Consume' -benchtime 1000000x ./adapters/franz/
//
// It prints the listen addresses and runs until interrupted.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	n := flag.Int("brokers", 3, "number of brokers")
	port := flag.Int("port", 9092, "first port (brokers listen on consecutive ports)")
	flag.Parse()
	ports := make([]int, *n)
	for i := range ports {
		ports[i] = *port + i
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(*n), kfake.Ports(ports...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfakebroker:", err)
		os.Exit(1)
	}
	defer c.Close()
	fmt.Println(strings.Join(c.ListenAddrs(), ","))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	<-sig
}
