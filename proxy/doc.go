// Package proxy terminates client connections and forwards HTTP requests to
// pool members.
//
// A Listener owns one bound socket for its whole life. What it serves comes
// from a Route, an immutable value swapped with one atomic store on every
// reload: the TLS config (nil for plain HTTP), the pool, the header rules and
// the timeouts. In-flight requests finish on the Route they started with;
// keep-alive connections carry on with the new one. The proxy knows nothing
// about where certificates come from: it is handed a finished *tls.Config.
package proxy
