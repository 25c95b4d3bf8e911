// Package mtlsctl is terminator's control API: a JSON API under /v1, served
// over mutual TLS, through which a controller reads and changes the running
// configuration at runtime, the way Octavia's controller drives its
// amphorae.
//
// Two CAs are involved: the server certificate comes from any certificate
// manager reference, and clients must present a certificate that chains to
// the client CA, is meant for client authentication, is not revoked, and
// (optionally) names an allowed identity. A certificate from the server CA
// is therefore refused as a client.
//
// Every write goes through one path: a copy of the committed configuration
// is edited, validated with the config package, applied atomically by the
// data plane, then persisted in the state directory and given a new
// version. If-Match on that version prevents lost updates; transactions
// stage several edits and commit them all or none.
package mtlsctl
