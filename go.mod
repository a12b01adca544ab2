module github.com/polykafka/polykafka

// go 1.26.0 is the lowest the dependencies allow: franz-go v1.22.2, kadm
// and kfake all declare go 1.26.0.
go 1.26.0

require (
	github.com/stretchr/testify v1.12.1
	github.com/twmb/franz-go v1.22.2
	github.com/twmb/franz-go/pkg/kadm v1.19.0
	github.com/twmb/franz-go/pkg/kfake v0.0.0-20260918054303-01f206a7e32c
	github.com/twmb/franz-go/pkg/kmsg v1.15.0
	// goleak (tests only): each adapter's test binary checks that no
	// goroutine outlives Close.
	go.uber.org/goleak v1.3.0
)

require github.com/confluentinc/confluent-kafka-go/v2 v2.11.1

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
