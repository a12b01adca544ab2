package franz_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polykafka/polykafka"
	"github.com/polykafka/polykafka/adapters/franz"
	"github.com/polykafka/polykafka/consumer"
	"github.com/polykafka/polykafka/internal/testcluster"
	"github.com/polykafka/polykafka/producer"
)

// Native options given to franz.New reach only the clients they are for:
// producer options (kgo.ProducerOpt) only producers, consumer and group
// options (kgo.ConsumerOpt, kgo.GroupOpt) only consumers, the rest both.
// MaxProduceRequestsInflightPerBroker(3) is invalid on an idempotent kgo
// client, which a consumer's client is: given to a consumer, it would make
// consumer.New fail.
func TestNativeOptionsByClientKind(t *testing.T) {
	tc := testcluster.New(t)
	topic := tc.Topic(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const (
		inflight   = 3
		fetchMax   = int32(1 << 20)
		session    = 7 * time.Second
		minMetaAge = 150 * time.Millisecond
	)
	b := franz.New(polykafka.Connection{Brokers: tc.Brokers()},
		kgo.MaxProduceRequestsInflightPerBroker(inflight), // producer
		kgo.FetchMaxBytes(fetchMax),                       // consumer
		kgo.SessionTimeout(session),                       // group
		kgo.MetadataMinAge(minMetaAge),                    // both
	)

	c, err := consumer.New(ctx, b, testcluster.Name(t, "g"), []string{topic}, nil)
	require.NoError(t, err, "a producer-only native option must not reach the consumer's client")
	defer c.Close()
	// Several in-flight requests need a producer that is not idempotent.
	p, err := producer.New(ctx, b, &producer.Options{Idempotence: producer.IdempotenceOff})
	require.NoError(t, err, "a consumer-only native option must not reach the producer's client")
	defer p.Close()

	var ccl, pcl *kgo.Client
	require.True(t, c.As(&ccl))
	require.True(t, p.As(&pcl))
	defaults, err := kgo.NewClient(kgo.SeedBrokers(tc.Brokers()...))
	require.NoError(t, err)
	defer defaults.Close()

	for _, tt := range []struct {
		name               string
		opt                any
		want               any
		consumer, producer bool // the option is for this client
	}{
		{"MaxProduceRequestsInflightPerBroker", kgo.MaxProduceRequestsInflightPerBroker, inflight, false, true},
		{"FetchMaxBytes", kgo.FetchMaxBytes, fetchMax, true, false},
		{"SessionTimeout", kgo.SessionTimeout, session, true, false},
		{"MetadataMinAge", kgo.MetadataMinAge, minMetaAge, true, true},
	} {
		for _, cl := range []struct {
			kind  string
			cl    *kgo.Client
			given bool
		}{{"consumer", ccl, tt.consumer}, {"producer", pcl, tt.producer}} {
			want := tt.want
			if !cl.given {
				want = defaults.OptValue(tt.opt)
			}
			assert.Equal(t, want, cl.cl.OptValue(tt.opt), "native option %s on the %s's client (given to it: %v)", tt.name, cl.kind, cl.given)
		}
	}

	// Both clients work.
	r := &polykafka.Record{Topic: topic, Value: []byte("v")}
	require.NoError(t, p.Send(ctx, r))
	_, err = c.AwaitAssignment(ctx)
	require.NoError(t, err)
}
