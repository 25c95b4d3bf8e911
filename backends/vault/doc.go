// Package vault is the certificate manager for HashiCorp Vault references.
//
// KV bundles (KV v1 or v2; field names configurable per reference):
//
//	vault:secret/data/tls/shop                         fields certificate, private_key, ca_chain (PEM)
//	vault:secret/data/tls/shop?cert=crt&key=key&chain=int
//	vault:secret/data/tls/shop?pkcs12=p12&passphrase=p12pass   a base64 PKCS#12 field
//	vault:kv1/tls/shop                                  a KV v1 mount
//
// A KV v2 secret is watched by its metadata's current version, a KV v1
// secret by the checksum of its data, on an interval with jitter; a change
// is reported to the data plane like a file change.
//
// PKI certificates issued to terminator itself:
//
//	vault-pki:pki/issue/web?common_name=shop.example.com&alt_names=www.shop.example.com&ttl=12h
//
// terminator generates the key, sends only a CSR (to pki/sign/web, the
// same role), and renews at two thirds of the lifetime with jitter. The
// private key never leaves terminator's memory.
//
// Raw secrets (client CA bundles, CRLs): vault:PATH?field=NAME from KV, and
// vault-pki:pki/ca_chain and vault-pki:pki/crl from a PKI mount.
//
// When Vault is sealed, unreachable or denies access, the last good bundle
// keeps serving until it expires; failures are retried with backoff and
// reported through Options.OnStatus and the log. Secrets and tokens are
// never logged.
package vault
