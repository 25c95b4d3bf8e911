// Package acme is the certificate manager for acme:// references: it
// obtains certificates from an ACME CA (RFC 8555), renews them and staples
// their OCSP responses.
//
//	acme://shop.example.com
//	acme://shop.example.com?san=www.shop.example.com&san=img.shop.example.com
//
// A reference names the certificate's first name and, with san, its other
// names. Challenges are answered by the data plane: HTTP-01 on the HTTP
// listeners (ChallengeResponder.HTTP01) and TLS-ALPN-01 in the TLS
// handshake (ChallengeResponder.TLSALPN01).
//
// Everything the manager learns lives in a Store: the account key, the
// certificates, the answers to pending challenges and the locks around
// issuance. With a shared store (Vault KV, Barbican) a fleet of instances
// holds one certificate per name: the instance that takes a name's lock
// issues, the others read the result, and any instance can answer a
// challenge another one started. A file store is the default for one
// instance.
//
// Until a name's first certificate exists the manager serves a self-signed
// placeholder for it and asks for a reload (Changed) as soon as the real
// one is stored. Certificates are renewed two thirds into their lifetime;
// failures are retried with a doubling backoff while the current
// certificate keeps being served.
package acme
