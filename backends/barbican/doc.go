// Package barbican is the certificate manager for OpenStack Barbican
// references, through gophercloud's keymanager/v1.
//
// References are Barbican hrefs as Octavia stores them, whatever their
// host (the request goes to terminator's own Barbican endpoint, by UUID):
//
//	https://barbican.example:9311/v1/secrets/<uuid>     a PKCS#12 bundle without passphrase
//	https://barbican.example:9311/v1/containers/<uuid>  a certificate container: certificate,
//	                                                     private_key, intermediates (PEM or PKCS#7),
//	                                                     private_key_passphrase
//
// as Octavia's Barbican cert manager reads them. Client CA and CRL
// references are plain secrets whose payload is PEM.
//
// Bundles are cached by reference and fetched once however many listeners
// use them. Barbican secrets are immutable, so a cached bundle is served
// until the configuration stops using it; references are re-checked on an
// interval with jitter, and a deleted secret or a revoked ACL is reported
// (log and Options.OnStatus) while the cached bundle keeps serving.
package barbican
