package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"sync"

	"github.com/terminator-proxy/terminator/proxy/h2server"
	"github.com/terminator-proxy/terminator/proxy/sockio"
)

// h2conns tracks a listener's HTTP/2 connections (package h2server serves
// them) for Shutdown.
type h2conns struct {
	mu      sync.Mutex // guards conns and closing
	conns   map[*h2server.Conn]bool
	closing bool
	wg      sync.WaitGroup // one per serving goroutine
}

// startH2 serves c as HTTP/2 in a new goroutine (up: the request that
// upgraded it from HTTP/1.1, or nil), unless the listener is shutting down.
// ci is the connection's facts, nil to take them from c.
func (l *Listener) startH2(c net.Conn, ci *connInfo, up *h2server.Upgrade) {
	if ci == nil {
		ci = newConnInfo(c)
	}
	st := l.route.Load()
	sc := h2server.NewConn(c, h2server.Options{
		Handler:        l,
		Context:        context.WithValue(context.Background(), connInfoKey{}, ci),
		MaxHeaderBytes: l.opts.MaxHeaderBytes,
		IdleTimeout:    st.ClientTimeout,
		Logger:         l.opts.Logger,
		WaitIdle:       idleWaiter(c),
	})
	s := &l.h2
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = c.Close()
		return
	}
	if s.conns == nil {
		s.conns = map[*h2server.Conn]bool{}
	}
	s.conns[sc] = true
	s.wg.Add(1)
	s.mu.Unlock()
	st.counters.connsActive.Inc()
	go func() {
		defer s.wg.Done()
		sc.Serve(up)
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
		l.route.Load().counters.connsActive.Dec()
	}()
}

// shutdownH2 sends GOAWAY on every HTTP/2 connection and waits for their
// streams to finish; when ctx ends first it cuts them.
func (l *Listener) shutdownH2(ctx context.Context) error {
	s := &l.h2
	s.mu.Lock()
	s.closing = true
	for sc := range s.conns {
		sc.Shutdown()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }() // ends when the last connection does
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for sc := range s.conns {
		sc.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// idleWaiter lets an idle HTTP/2 connection over TLS wait for its client
// holding no read buffer (idle.go): nil when c is not a TLS connection
// over terminator's record reader (h2c connections handed over with bytes
// already read).
func idleWaiter(c net.Conn) func() error {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	rec, _ := tc.NetConn().(*recordConn)
	if rec == nil {
		return nil
	}
	probe := sockio.NewProbe(tcpOf(rec))
	if probe == nil {
		return nil
	}
	return func() error {
		if rec.pending() {
			return nil // crypto/tls has a record to read: no need to wait
		}
		return probe.Wait()
	}
}
