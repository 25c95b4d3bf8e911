package barbican_test

import (
	"testing"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestStore runs the ACME store contract against a real Barbican, with
// Keystone and without: values round-trip, locks have one holder even when
// six instances race for one.
func TestStore(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.mode, func(t *testing.T) {
			m := f.manager(t, nil)
			// Each handle keeps its own locks, as an instance does.
			open := func() tu.SharedStore { return m.Store("/acme-test/") }
			tu.CheckStore(t, open(), open)
		})
	}
}
