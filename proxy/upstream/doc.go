// Package upstream holds terminator's connections to pool members and
// knows nothing of clients, routes or HTTP semantics beyond what a
// connection needs.
//
// A Pool keeps HTTP/1.1 keep-alive connections per member address for one
// set of timeouts, PROXY and TLS settings: an idle connection is checked
// without reading (sockio.Probe) before it carries another request, and
// is kept only when its last response ended exactly at a message
// boundary (Conn.AtBoundary). An H2Pool keeps multiplexed HTTP/2
// connections (package h2client) per member, dialing once for all the
// requests that find none with room, and remembers for a while the TLS
// members that decline h2. Writes to an HTTP/2 member are gathered into
// fewer records and system calls (cork.go). Registries hold one pool per
// key for the life of the process, so member connections survive reloads,
// and drop those of TLS settings no snapshot uses any more.
//
// Files: registry.go (pools by key), pool.go (HTTP/1.1 pools and
// connections), timeout.go (haproxy's timeout server on a connection),
// h2.go (HTTP/2 pools), cork.go (write gathering).
package upstream
