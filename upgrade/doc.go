// Package upgrade replaces a running terminator with a new binary without
// closing a listening socket: the binary upgrade nginx does on SIGUSR2.
//
// The running process (the predecessor) calls Start. It starts the binary
// at the given path, which a package upgrade has just replaced, with
// duplicates of its listening sockets as extra descriptors and a unix
// socket pair over which it sends an opaque state (ticket keys, member
// health). The successor finds them with Inherited, builds its listeners
// on the inherited sockets, and calls Ready once it serves. Start returns
// then; the predecessor tells systemd the new main PID and calls Release,
// after which it stops accepting and drains. Both processes accept from
// the same kernel sockets in between, so no connection is refused and
// none waits in a closed queue.
//
// If the successor exits, or is not ready within the timeout, Start
// returns an error (the successor is killed) and the predecessor keeps
// serving as if nothing happened.
//
// cloudflare/tableflip does the same, but it keeps a duplicate of every
// socket ever listened on until the next upgrade and has no way to drop
// one: a listener removed by a reload would stay bound, its backlog filled
// by clients that nobody serves. Here the sockets handed over are exactly
// those serving at the moment of the upgrade. systemd's file-descriptor
// store cannot overlap two processes: the new one starts only after the
// old one has exited, so new connections would wait for a whole drain.
package upgrade

// envVar carries the descriptor map from predecessor to successor.
const envVar = "TERMINATOR_UPGRADE"

// maxState bounds the state a successor accepts.
const maxState = 64 << 20

// The one-line messages on the socket pair.
const (
	msgReady = "ready\n"
	msgMain  = "main\n"
)

// descriptors is envVar's JSON value.
type descriptors struct {
	Control int            `json:"control"`
	Files   map[string]int `json:"files"`
}
