// Package h2client is terminator's HTTP/2 client toward pool members (RFC
// 9113), built on golang.org/x/net/http2's Framer and hpack. A Conn
// multiplexes requests over one member connection; it knows nothing of
// pools, routes or clients.
//
// One goroutine per connection reads frames and does all protocol work
// itself (SETTINGS, PING, WINDOW_UPDATE, RST_STREAM, GOAWAY): it answers
// through a control queue written by whoever holds the write lock next,
// so it never waits on the member's socket. A request is written by the
// goroutine that sends it: its HEADERS and, when the body is already
// complete and fits the windows, its DATA, before it waits for the
// answer. Only a body still arriving from the client is copied by a
// goroutine of the stream's own. Response DATA is buffered per stream up
// to the window advertised (256 KiB per stream, 1 MiB per connection) and
// the window is returned as the caller reads.
//
// Everything from the member is checked: frame sizes and flow-control
// windows, header lists bounded by Options.MaxHeaderListSize (the
// CONTINUATION sequence included), a response's pseudo-header fields
// (only :status, first), connection-specific fields, a Content-Length
// that disagrees with the DATA received, pushes (refused in SETTINGS and
// a connection error if sent). A stream whose member breaks a rule is
// reset; a connection whose member breaks one is closed with GOAWAY.
//
// A connection silent for Options.PingAfter is pinged and closed when
// the answer does not come within Options.PingTimeout; one without
// streams for Options.IdleTimeout closes itself. A stream whose member
// says nothing for Request.Silence (while the caller reads) is reset and
// fails with a SilenceError, a net.Error timeout.
//
// Files: conn.go (the connection, its life and timers), read.go (the
// read loop), write.go (the write side), stream.go (requests, responses,
// bodies).
package h2client
