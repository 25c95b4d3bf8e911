// Package sni selects the certificate for a TLS handshake and enforces a
// listener's client-certificate policy.
//
// A Store is an immutable index built once per snapshot: exact names and
// wildcard suffixes in maps (lookup is O(1) in the number of certificates),
// a default for handshakes without SNI or without a match, optional strict
// SNI, and several certificates per name (ECDSA and RSA) chosen by what the
// client supports.
//
// NewServerConfig builds the *tls.Config a listener hands out from its
// GetConfigForClient callback. It is built once per snapshot and never
// cloned or modified per connection, so session resumption keeps working.
// Client certificates are verified in VerifyConnection, which also runs on
// resumed sessions, and a listener that asks for client authentication can
// never end up without it.
package sni
