// Package httpwire is terminator's HTTP/1.1 codec (RFC 9112): it reads and
// checks message heads and body framing for the client and member sides of
// the proxy, and knows nothing of pools, routes or connections.
//
// It is deliberately stricter than the RFC's "MAY accept" clauses wherever
// leniency could let two parsers disagree about where a message ends:
// obs-fold, a field name followed by white space, control characters,
// Transfer-Encoding together with Content-Length, differing Content-Length
// values and any transfer coding other than a lone "chunked" are all
// refused. Every message terminator forwards is re-serialised from the
// parsed form, never copied raw.
package httpwire
