package certs_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/terminator-proxy/terminator/certs"
)

// TestRegistryNamesWhatIsMissing: a reference whose scheme no manager
// serves is refused naming the schemes known, or, for a scheme with a hint
// (known to terminator but not configured), with that hint; With keeps
// the hints.
func TestRegistryNamesWhatIsMissing(t *testing.T) {
	reg := certs.NewRegistry()
	reg.Hint("acme", "acme:// references need an acme section")
	for _, r := range []*certs.Registry{reg, reg.With("other", nil)} {
		_, err := r.Bundle(context.Background(), "acme://shop.example")
		if !errors.Is(err, certs.ErrUnsupportedRef) || !strings.Contains(err.Error(), "need an acme section") {
			t.Errorf("hinted scheme: %v", err)
		}
		_, err = r.Bundle(context.Background(), "s3://bucket/cert")
		if !errors.Is(err, certs.ErrUnsupportedRef) || !strings.Contains(err.Error(), `scheme "s3"`) {
			t.Errorf("unknown scheme: %v", err)
		}
	}
}
