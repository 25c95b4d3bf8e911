// Package h2server is terminator's HTTP/2 server (RFC 9113), built on
// golang.org/x/net/http2's Framer and hpack. It turns each client stream
// into an *http.Request for an http.Handler and knows nothing of pools,
// routes or members.
//
// One goroutine per connection reads frames and does all protocol work
// itself: SETTINGS, PING, WINDOW_UPDATE and RST_STREAM are answered from
// the read loop through a bounded control queue, never through a hand-off
// to another goroutine. Each request runs its handler in a worker
// goroutine (kept parked for the next stream while the connection is
// busy, so its grown stack is reused), which writes its frames itself
// under the connection's write lock; a writer that finds others waiting
// leaves the flush to the last of them, and one about to flush while
// other streams are in flight yields once first, so concurrent streams
// share write system calls. Request bodies are buffered per stream up to
// the advertised window (256 KiB per stream, 1 MiB per connection) and
// the window is returned as the handler reads. An idle connection (no
// open stream) gives its read buffer back and, through Options.WaitIdle,
// waits for the client holding none.
//
// Files: conn.go (the read loop, shutdown), frames.go (control frames,
// flood limits), headers.go (header blocks, request rules), stream.go
// (stream life), worker.go, flow.go (bodies, flow control), response.go
// (the ResponseWriter), write.go (the write side), idle.go (the read
// buffer).
//
// Requests get the same strict rules as the HTTP/1.x path: pseudo-header
// fields first, once each and only the defined ones; lower-case names;
// no connection-specific fields; TE only "trailers"; Content-Length equal
// to the DATA received; :authority and Host agreeing. A malformed request
// is a stream error (PROTOCOL_ERROR), never a guess.
//
// Limits: SETTINGS_MAX_CONCURRENT_STREAMS (REFUSED_STREAM beyond it); the
// header list size, counted while decoding, answered with 431; header
// blocks of at most maxContinuations CONTINUATION frames (the 2024
// CONTINUATION floods, CVE-2023-45288 in Go's own server); running handlers at most twice the stream limit and a
// connection whose client resets most of what it opens closed with
// ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487); PING, SETTINGS,
// PRIORITY and empty DATA frames drawn from a refilling budget; at most
// maxControlQueue answers waiting for a client that does not read.
// Shutdown sends GOAWAY with the last stream taken and closes the
// connection once those streams are done.
package h2server
