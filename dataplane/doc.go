// Package dataplane turns a configuration into running listeners.
//
// Build fetches every certificate through the certificate managers,
// validates it, and produces an immutable Snapshot: one proxy.Route per
// listener with its SNI store, TLS policy and pool. Plane.Apply binds any new
// sockets, then swaps every listener's route; if anything fails, nothing
// changes and the previous snapshot keeps serving. Plane.Run reloads on
// SIGHUP and whenever a certificate manager reports a change.
package dataplane
