package vault_test

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/terminator-proxy/terminator/backends/vault"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestKVStore runs the ACME store contract against a real Vault with a
// token holding exactly the policy the KVStore documents.
func TestKVStore(t *testing.T) {
	ctx := context.Background()
	if _, err := devVault.root.Logical().WriteWithContext(ctx, "sys/policies/acl/acme", map[string]any{"policy": `
path "secret/data/terminator/acme/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/terminator/acme/*" { capabilities = ["read", "delete"] }
`}); err != nil {
		t.Fatal(err)
	}
	tok, err := devVault.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"acme"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := newManager(t, &vault.Auth{Method: "token", Token: tok.Auth.ClientToken})
	// A KVStore keeps no state of its own: handles on one client are as
	// separate as instances.
	open := func() tu.SharedStore { return m.KVStore("secret", "/terminator/acme/") }
	tu.CheckStore(t, open(), open)
}
