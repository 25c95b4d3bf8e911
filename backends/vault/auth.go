package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
)

// login authenticates with the configured method and returns the login
// secret (nil for a plain token that cannot be renewed). It never logs the
// token.
func (m *Manager) login(ctx context.Context) (*api.Secret, error) {
	m.loginMu.Lock()
	defer m.loginMu.Unlock()
	a := m.opts.Auth
	switch a.Method {
	case "", "token":
		tok := a.Token
		if tok != "" {
			m.client.SetToken(strings.TrimSpace(tok))
		}
		if m.client.Token() == "" {
			return nil, errors.New("vault: no token (set vault.auth.token_file or VAULT_TOKEN)")
		}
		s, err := m.client.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return nil, fmt.Errorf("vault: token lookup: %w", explain(err, "auth/token/lookup-self"))
		}
		renewable, _ := s.TokenIsRenewable()
		ttl, _ := s.TokenTTL()
		if !renewable || ttl == 0 {
			return nil, nil // a root or periodic token that never expires, or one we cannot renew
		}
		return &api.Secret{Auth: &api.SecretAuth{ClientToken: m.client.Token(), Renewable: true, LeaseDuration: int(ttl.Seconds())}}, nil
	case "approle":
		var opts []approle.LoginOption
		if a.Mount != "" {
			opts = append(opts, approle.WithMountPath(a.Mount))
		}
		sid := &approle.SecretID{FromString: a.SecretID}
		auth, err := approle.NewAppRoleAuth(a.RoleID, sid, opts...)
		if err != nil {
			return nil, fmt.Errorf("vault: approle: %w", err)
		}
		s, err := m.client.Auth().Login(ctx, auth)
		if err != nil {
			return nil, fmt.Errorf("vault: approle login: %w", explain(err, "auth/approle/login"))
		}
		return s, nil
	case "cert":
		mount := a.Mount
		if mount == "" {
			mount = "cert"
		}
		s, err := m.client.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", map[string]any{"name": a.CertRole})
		if err != nil {
			return nil, fmt.Errorf("vault: cert login: %w", explain(err, "auth/"+mount+"/login"))
		}
		if s == nil || s.Auth == nil {
			return nil, errors.New("vault: cert login returned no token")
		}
		m.client.SetToken(s.Auth.ClientToken)
		return s, nil
	}
	return nil, fmt.Errorf("vault: unknown auth method %q", a.Method)
}

// ReadSecretFile reads a secret (token, SecretID) from a file, trimmed.
func ReadSecretFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}
