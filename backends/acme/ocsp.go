package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"golang.org/x/crypto/ocsp"
)

// maxOCSPResponse bounds what a responder may send (real ones are < 4 KiB).
const maxOCSPResponse = 64 << 10

// staple fetches a fresh OCSP response for e's certificate and serves it
// stapled. Certificates without a responder are left alone; a failed fetch
// keeps the current staple (if still valid) and is retried.
func (m *Manager) staple(ctx context.Context, e *entry) {
	b := e.bundle
	now := time.Now()
	leaf := b.Leaf()
	if len(leaf.OCSPServer) == 0 || len(b.Chain) == 0 {
		e.ocspAt = b.NotAfter // nothing to staple
		return
	}
	raw, resp, err := m.fetchOCSP(ctx, leaf, b.Chain[0])
	if err != nil {
		e.ocspAt = now.Add(min(m.opts.Check, 5*time.Minute))
		m.log.Warn("OCSP response not fetched; retrying", "ref", e.ref, "responder", leaf.OCSPServer[0], "err", err)
		return
	}
	switch resp.Status {
	case ocsp.Good:
	case ocsp.Revoked:
		m.log.Error("the ACME certificate is revoked; obtaining a new one", "ref", e.ref, "revoked_at", resp.RevokedAt)
		e.renewAt, e.retryAt = now, time.Time{}
		e.ocspAt = now.Add(m.opts.Check)
		return
	default:
		e.ocspAt = now.Add(min(m.opts.Check, 5*time.Minute))
		return
	}
	// Refresh half-way through the response's validity.
	next := now.Add(time.Hour)
	if !resp.NextUpdate.IsZero() {
		next = resp.ThisUpdate.Add(resp.NextUpdate.Sub(resp.ThisUpdate) / 2)
	}
	if floor := now.Add(time.Minute); next.Before(floor) {
		next = floor
	}
	e.ocspAt = next
	tc := *b.TLS
	tc.OCSPStaple = raw
	nb := *b
	nb.TLS = &tc
	m.setBundle(e, &nb)
	m.log.Info("OCSP response stapled", "ref", e.ref, "next_update", resp.NextUpdate)
	m.notify()
}

// fetchOCSP asks the certificate's responder about it and checks the
// answer's signature against the issuer.
func (m *Manager) fetchOCSP(ctx context.Context, leaf, issuer *x509.Certificate) ([]byte, *ocsp.Response, error) {
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, leaf.OCSPServer[0], bytes.NewReader(req))
	if err != nil {
		return nil, nil, err
	}
	hr.Header.Set("Content-Type", "application/ocsp-request")
	res, err := m.opts.HTTPClient.Do(hr)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("responder answered %s", res.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxOCSPResponse+1))
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > maxOCSPResponse {
		return nil, nil, errors.New("response larger than 64 KiB")
	}
	resp, err := ocsp.ParseResponseForCert(raw, leaf, issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid response: %w", err)
	}
	if !resp.NextUpdate.IsZero() && !time.Now().Before(resp.NextUpdate) {
		return nil, nil, errors.New("the response has expired")
	}
	return raw, resp, nil
}
