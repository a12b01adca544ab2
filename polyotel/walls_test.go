package polyotel_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOptIn checks the dependency wall: the portable packages and the
// adapters compile none of OpenTelemetry, so an application that does not
// import polyotel does not either; and polyotel itself needs the API only,
// never the SDK.
func TestOptIn(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command") // never in CI, which builds with it
	}
	deps := func(pkgs ...string) []string {
		out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).Output()
		require.NoError(t, err, "go list -deps %v", pkgs)
		return strings.Fields(string(out))
	}
	const mod = "github.com/polykafka/polykafka/"
	for _, d := range deps(mod+"consumer", mod+"producer", mod+"admin", mod+"adapters/franz", mod+"adapters/sarama", mod+"adapters/kafkago") {
		assert.False(t, strings.HasPrefix(d, "go.opentelemetry.io/"), "consumer, producer, admin and the adapters must not import OpenTelemetry: %s", d)
	}
	for _, d := range deps(mod + "polyotel") {
		assert.False(t, strings.HasPrefix(d, "go.opentelemetry.io/otel/sdk"), "polyotel depends on the OpenTelemetry API only: %s", d)
	}
}
