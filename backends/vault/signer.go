package vault

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Signer signs CSRs with a PKI role: the CertificateGenerator of Octavia's
// design, backed by Vault. It satisfies mtlsctl.Signer, so the control
// API's own short-lived certificate can come from Vault too.
type Signer struct {
	m    *Manager
	path string // MOUNT/sign/ROLE
}

// Signer returns a signer for role ("pki/web": mount pki, role web).
func (m *Manager) Signer(role string) (*Signer, error) {
	i := strings.LastIndexByte(role, '/')
	if i <= 0 || i == len(role)-1 {
		return nil, fmt.Errorf("vault: signer role %q: want MOUNT/ROLE, e.g. pki/web", role)
	}
	return &Signer{m: m, path: role[:i] + "/sign/" + role[i+1:]}, nil
}

// SignCSR has Vault sign csrPEM for validity and returns the certificate
// followed by its CA chain, PEM.
func (s *Signer) SignCSR(ctx context.Context, csrPEM []byte, validity time.Duration) ([]byte, error) {
	var sec *api.Secret
	err := s.m.call(ctx, func() error {
		var err error
		sec, err = s.m.client.Logical().WriteWithContext(ctx, s.path, map[string]any{
			"csr": string(csrPEM), "format": "pem", "ttl": validity.String(), "exclude_cn_from_sans": false,
		})
		return err
	})
	if err != nil {
		return nil, explain(err, s.path)
	}
	if sec == nil || sec.Data == nil {
		return nil, fmt.Errorf("vault: %s returned no certificate", s.path)
	}
	out, _ := sec.Data["certificate"].(string)
	if cc, ok := sec.Data["ca_chain"].([]any); ok {
		for _, c := range cc {
			if str, ok := c.(string); ok {
				out += "\n" + str
			}
		}
	}
	return []byte(out + "\n"), nil
}
