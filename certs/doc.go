// Package certs is the certificate-manager seam of terminator.
//
// A Manager turns a reference (file:///…, a Barbican href, vault:…) into a
// validated Bundle: certificate, private key and intermediates, the
// passphrase already handled, as in Octavia's CertManager. Managers also hand
// out raw secrets (client CA bundles, CRLs). The Registry picks a manager by
// the reference's scheme, so new secret stores slot in without touching the
// proxy.
//
// Every bundle passes through Assemble, the one validator: the key must match
// the certificate, intermediates must link (they are put in order), and the
// certificate must name a host. Errors name the reference and the cause.
package certs
