package mtlsctl

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/terminator-proxy/terminator/sni"
)

// handshakeTimeout bounds a control client's TLS handshake.
const handshakeTimeout = 10 * time.Second

// tlsListener runs each TLS handshake on its own goroutine, off the accept
// loop, and hands net/http only connections whose client passed. A refused
// client gets the alert that says why (see sni.AlertHold), one log line
// and a count, none of which net/http's own TLS listener allows.
type tlsListener struct {
	net.Listener
	s      *Server
	conns  chan net.Conn
	ctx    context.Context // cancelled by Close: ends handshakes in progress
	cancel context.CancelFunc
	wg     sync.WaitGroup        // the accept loop and handshakes in progress
	err    atomic.Pointer[error] // why the accept loop ended, if it did by itself
}

func (s *Server) newTLSListener(ln net.Listener) *tlsListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &tlsListener{Listener: ln, s: s, conns: make(chan net.Conn), ctx: ctx, cancel: cancel}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

func (l *tlsListener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.err.Store(&err)
			l.cancel()
			return
		}
		l.wg.Add(1)
		go l.handshake(c)
	}
}

// alertConn lets a handshake's refusal alert be patched (sni.AlertHold).
type alertConn struct {
	net.Conn
	alerts sni.AlertHold
}

func (c *alertConn) Write(p []byte) (int, error) {
	if c.alerts.Intercept(p) {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (l *tlsListener) handshake(c net.Conn) {
	defer l.wg.Done()
	ac := &alertConn{Conn: c}
	tc := tls.Server(ac, l.s.http.TLSConfig)
	ctx, cancel := context.WithTimeout(l.ctx, handshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	ac.alerts.Release(ac.Conn, err)
	if err != nil {
		if sni.ClientCertReason(err) != "" {
			l.s.refused(err, "handshake")
		} else {
			l.s.log.Debug("control API: TLS handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		}
		_ = tc.Close()
		return
	}
	select {
	case l.conns <- tc:
	case <-l.ctx.Done():
		_ = tc.Close()
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.ctx.Done():
		if err := l.err.Load(); err != nil {
			return nil, *err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting and ends handshakes in progress, waiting for them.
func (l *tlsListener) Close() error {
	l.cancel()
	err := l.Listener.Close()
	l.wg.Wait()
	return err
}
