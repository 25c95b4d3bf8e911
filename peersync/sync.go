// Package peersync shares persistence-table entries (pool, key, member)
// between the instances of a pair, as haproxy's peers section does for
// Octavia's ACTIVE_STANDBY amphorae, so that a client keeps its member when
// the VIP moves.
//
// Every instance listens on its peer address and dials the others: its
// outbound connection carries its own changes, its inbound ones the
// others'. A connection opens with a nonce from each side; every frame
// after that is a length, a JSON batch of entries and an HMAC-SHA256 over
// both nonces, a sequence number and the batch, with the key all peers
// share, so that only peers can write a table and a recorded frame cannot
// be replayed. On every (re)connect the dialer sends its whole table first,
// so a restarted peer catches up.
package peersync

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Entry is one persistence-table entry.
type Entry struct {
	Pool string `json:"p"`
	Key  string `json:"k"`
	Addr string `json:"a"`
}

// Bounds on what a peer may send.
const (
	maxFrame     = 256 << 10
	maxBatch     = 1000
	maxKey       = 256
	nonceSize    = 16
	queueSize    = 4096
	dialTimeout  = 5 * time.Second
	maxBackoff   = 5 * time.Second
	frameTimeout = 30 * time.Second
)

var magic = []byte("terminator-peers-v1")

// Options configure a Sync.
type Options struct {
	Key []byte
	// Listen binds the local address (the amphora binds in its namespace).
	Listen func(network, addr string) (net.Listener, error)
	// Dial opens a connection to a peer.
	Dial func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error)
	// Entries lists the local table, sent whole on every connect.
	Entries func() []Entry
	// Learn applies a peer's entry; Known tells which pools may be written.
	Learn  func(Entry)
	Known  func(pool string) bool
	Logger *slog.Logger
}

// Sync runs the exchange until Close.
type Sync struct {
	o      Options
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	peers  []*outbound

	mu    sync.Mutex // guards conns
	conns map[net.Conn]bool
}

// outbound is the connection to one peer and its queue of changes.
type outbound struct {
	addr   string
	queue  chan Entry
	resync chan struct{} // the queue overflowed: send the whole table
}

// Start listens on local and connects to each of peers.
func Start(local string, peers []string, o Options) (*Sync, error) {
	if len(o.Key) < 16 {
		return nil, errors.New("peersync: the key must be at least 16 bytes")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Listen == nil {
		o.Listen = net.Listen
	}
	if o.Dial == nil {
		o.Dial = func(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
	}
	ln, err := o.Listen("tcp", local)
	if err != nil {
		return nil, fmt.Errorf("peersync: listening on %s: %w", local, err)
	}
	s := &Sync{o: o, ln: ln, conns: map[net.Conn]bool{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.accept()
	for _, addr := range peers {
		p := &outbound{addr: addr, queue: make(chan Entry, queueSize), resync: make(chan struct{}, 1)}
		s.peers = append(s.peers, p)
		s.wg.Add(1)
		go s.send(p)
	}
	return s, nil
}

// Addr is the local listening address.
func (s *Sync) Addr() net.Addr { return s.ln.Addr() }

// Publish queues a local change for every peer; it never blocks.
func (s *Sync) Publish(e Entry) {
	for _, p := range s.peers {
		select {
		case p.queue <- e:
		default:
			select {
			case p.resync <- struct{}{}:
			default:
			}
		}
	}
}

// Close stops the exchange and waits for its goroutines.
func (s *Sync) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Sync) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		c.Close()
		return false
	}
	s.conns[c] = true
	return true
}

func (s *Sync) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// send keeps the connection to one peer and writes the local changes.
func (s *Sync) send(p *outbound) {
	defer s.wg.Done()
	backoff := 100 * time.Millisecond
	for s.ctx.Err() == nil {
		err := s.sendOnce(p)
		if s.ctx.Err() != nil {
			return
		}
		s.o.Logger.Debug("peersync: connection to peer ended; retrying", "peer", p.addr, "err", err, "in", backoff)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (s *Sync) sendOnce(p *outbound) error {
	ctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
	c, err := s.o.Dial(ctx, &net.Dialer{}, "tcp", p.addr)
	cancel()
	if err != nil {
		return err
	}
	if !s.track(c) {
		return nil
	}
	defer s.untrack(c)
	var mine [nonceSize]byte
	_, _ = rand.Read(mine[:])
	_ = c.SetDeadline(time.Now().Add(frameTimeout))
	if _, err := c.Write(mine[:]); err != nil {
		return err
	}
	var theirs [nonceSize]byte
	if _, err := io.ReadFull(c, theirs[:]); err != nil {
		return err
	}
	w := &framer{key: s.o.Key, nc: mine, ns: theirs}
	// The peer sends nothing more: a read ends when it goes away, and the
	// next connection sends the whole table again.
	gone := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = c.SetReadDeadline(time.Time{})
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 1))
		close(gone)
	}()
	defer func() { c.Close(); <-gone }()
	all := s.o.Entries()
	for len(all) > 0 {
		n := min(len(all), maxBatch)
		if err := w.write(c, all[:n]); err != nil {
			return err
		}
		all = all[n:]
	}
	for {
		var batch []Entry
		select {
		case <-s.ctx.Done():
			return nil
		case <-gone:
			return errors.New("the peer closed the connection")
		case <-p.resync:
			batch = s.o.Entries()
		case e := <-p.queue:
			batch = append(batch, e)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case e := <-p.queue:
				batch = append(batch, e)
			default:
				break drain
			}
		}
		for len(batch) > 0 {
			n := min(len(batch), maxBatch)
			_ = c.SetWriteDeadline(time.Now().Add(frameTimeout))
			if err := w.write(c, batch[:n]); err != nil {
				return err
			}
			batch = batch[n:]
		}
	}
}

// accept takes the peers' connections.
func (s *Sync) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !s.track(c) {
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			if err := s.receive(c); err != nil && s.ctx.Err() == nil {
				s.o.Logger.Warn("peersync: a peer connection was refused or broke", "from", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// receive reads a peer's frames and applies their entries.
func (s *Sync) receive(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(frameTimeout))
	var theirs [nonceSize]byte
	if _, err := io.ReadFull(c, theirs[:]); err != nil {
		return err
	}
	var mine [nonceSize]byte
	_, _ = rand.Read(mine[:])
	if _, err := c.Write(mine[:]); err != nil {
		return err
	}
	r := &framer{key: s.o.Key, nc: theirs, ns: mine}
	for {
		_ = c.SetReadDeadline(time.Time{}) // an idle peer is fine; Close ends the wait
		batch, err := r.read(c)
		if err != nil {
			return err
		}
		for _, e := range batch {
			if len(e.Key) > maxKey || len(e.Addr) > maxKey || (s.o.Known != nil && !s.o.Known(e.Pool)) {
				continue
			}
			s.o.Learn(e)
		}
	}
}

// framer writes or reads the authenticated frames of one connection.
type framer struct {
	key    []byte
	nc, ns [nonceSize]byte // the dialer's and the listener's nonces
	seq    uint64
}

func (f *framer) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, f.key)
	m.Write(magic)
	m.Write(f.nc[:])
	m.Write(f.ns[:])
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], f.seq)
	m.Write(seq[:])
	m.Write(payload)
	return m.Sum(nil)
}

func (f *framer) write(w io.Writer, batch []Entry) error {
	payload, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	if len(payload) > maxFrame {
		return fmt.Errorf("peersync: a batch of %d bytes exceeds %d", len(payload), maxFrame)
	}
	f.seq++
	frame := make([]byte, 4, 4+len(payload)+sha256.Size)
	binary.BigEndian.PutUint32(frame, uint32(len(payload)))
	frame = append(frame, payload...)
	frame = append(frame, f.mac(payload)...)
	_, err = w.Write(frame)
	return err
}

func (f *framer) read(r io.Reader) ([]Entry, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxFrame {
		return nil, fmt.Errorf("a frame of %d bytes exceeds %d", size, maxFrame)
	}
	buf := make([]byte, int(size)+sha256.Size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	payload, sum := buf[:size], buf[size:]
	f.seq++
	if !hmac.Equal(sum, f.mac(payload)) {
		return nil, errors.New("a frame failed authentication (wrong key, or tampered)")
	}
	var batch []Entry
	if err := json.Unmarshal(payload, &batch); err != nil {
		return nil, fmt.Errorf("a frame is not a batch of entries: %w", err)
	}
	if len(batch) > maxBatch {
		return nil, fmt.Errorf("a batch of %d entries exceeds %d", len(batch), maxBatch)
	}
	return batch, nil
}
