// Package proxy terminates client connections and forwards HTTP requests to
// pool members.
//
// A Listener owns one bound socket for its whole life. What it serves comes
// from a Route, an immutable value swapped with one atomic store on every
// reload: the TLS config (nil for plain HTTP), the pool, the header rules and
// the timeouts. In-flight requests finish on the Route they started with;
// keep-alive connections carry on with the new one. The proxy knows nothing
// about where certificates come from: it is handed a finished *tls.Config.
//
// The request path, file by file:
//
//   - listener.go accepts, checks allowed_cidrs and PROXY headers, and does
//     the TLS handshake off the accept loop. Connections that negotiate h2
//     (or send the h2c preface, or upgrade) go to package h2server, served
//     by h2conn.go; all others are HTTP/1.x.
//   - h1conn.go and h1response.go serve HTTP/1.x themselves: one goroutine
//     per connection reads a request (httpwire: strict parsing, so request
//     smuggling stays impossible), runs Listener.ServeHTTP and writes the
//     response. idle.go lets an idle connection wait for the client with no
//     read buffer.
//   - Listener.ServeHTTP applies L7 policies (package l7), picks a member
//     (package lb: pools, balancing, persistence, member health) and calls
//     the Forwarder.
//   - forward.go and exchange.go write the request to a pooled member
//     connection (package upstream: keep-alive pools per member, probed
//     before reuse) and relay the response, in the serving goroutine
//     itself: HTTP/1.1 to members, framing re-done by terminator on both
//     sides.
//   - h2member.go speaks HTTP/2 to members of pools that offer h2 (or h2c)
//     over upstream's HTTP/2 pools and package h2client (one reader per
//     member connection, requests written by their own goroutine),
//     trailers both ways; gRPC passes.
//   - h2server (a package of its own) is the HTTP/2 server loop on x/net's
//     Framer and hpack: one reader per connection, a goroutine per request,
//     frames written by the request's goroutine under one lock, the limits
//     of RFC 9113 and the flood defences; it hands Listener.ServeHTTP the
//     same *http.Request the HTTP/1.x loop does.
//   - h2cupgrade.go takes an Upgrade: h2c request to HTTP/2; acme.go answers
//     ACME challenges for the certificate manager that started them.
package proxy
