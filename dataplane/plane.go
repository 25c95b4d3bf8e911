package dataplane

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/terminator-proxy/terminator/accesslog"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/peersync"
	"github.com/terminator-proxy/terminator/proxy"
	"github.com/terminator-proxy/terminator/proxy/lb"
	"github.com/terminator-proxy/terminator/proxy/sockio"
	"github.com/terminator-proxy/terminator/udprelay"
)

// Options configure a Plane.
type Options struct {
	Certs   certs.Manager
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// DrainTimeout bounds how long a removed listener (or, at Shutdown,
	// every listener) may take to finish its requests. Default 30s.
	DrainTimeout time.Duration
	// Listen binds sockets; default sockio.Listen (net.Listen's keep-alive
	// settings, set once on the listening socket). ListenPacket binds the
	// sockets of UDP listeners; default net.ListenPacket.
	Listen       func(network, addr string) (net.Listener, error)
	ListenPacket func(network, addr string) (net.PacketConn, error)
	// Dial opens member and health-check connections with d's settings;
	// default d.DialContext. Listen and Dial together put the data plane
	// in another network namespace (the amphora's).
	Dial proxy.DialFunc
	// AccessLog, if set, receives the access-log lines of every listener
	// whose configuration asks for them (log.access_log).
	AccessLog *accesslog.Logger
	// Challenges, if set, answers ACME challenges on every listener.
	Challenges proxy.ChallengeResponder
	// Now is the clock for certificate validity; default time.Now.
	Now func() time.Time
	// OnReload, if set, is told the result of each configuration reload
	// that Run performs (SIGHUP), after it took effect or was refused: for
	// systemd's RELOADING=1 / READY=1.
	OnReload func(err error)
}

// Plane owns the listeners and the snapshot they serve.
type Plane struct {
	opts      Options
	forwarder *proxy.Forwarder
	states    *lb.States // member state that outlives snapshots
	current   atomic.Pointer[Snapshot]

	mu        sync.Mutex // serialises Apply and Shutdown; guards the fields below
	listeners map[string]*proxy.Listener
	relays    map[string]*udprelay.Relay // UDP listeners by bind
	peers     *peersync.Sync             // persistence shared with the peers, if configured
	peersCfg  *config.Peers
	tickets   [][32]byte // from tls.session_ticket_keys_file; nil without one
	// autoTickets seal tickets when no key file is configured: made here,
	// rotated by Run, and carried over by a binary upgrade (Handover).
	autoTickets [][32]byte
	gen         uint64
	checks      *checks // health checks of the current snapshot
	closed      bool
	draining    sync.WaitGroup // removed listeners and stopped checks, still finishing
}

// New returns a Plane serving nothing until the first Apply.
func New(o Options) *Plane {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Listen == nil {
		o.Listen = sockio.Listen
	}
	if o.ListenPacket == nil {
		o.ListenPacket = net.ListenPacket
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	return &Plane{
		opts:        o,
		forwarder:   proxy.NewForwarder(proxy.ForwarderOptions{Logger: o.Logger, Dial: o.Dial}),
		states:      lb.NewStates(),
		listeners:   map[string]*proxy.Listener{},
		relays:      map[string]*udprelay.Relay{},
		autoTickets: [][32]byte{newTicketKey()},
	}
}

// Current returns the snapshot serving now, or nil before the first Apply.
func (p *Plane) Current() *Snapshot { return p.current.Load() }

// Addr returns the bound address of the listener with the given bind
// setting, or nil.
func (p *Plane) Addr(bind string) net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l := p.listeners[bind]; l != nil {
		return l.Addr()
	}
	return nil
}

// Apply builds a snapshot of cfg and switches every listener to it. If
// anything fails (a certificate, a socket), nothing changes, the previous
// snapshot keeps serving, and the error lists every problem.
func (p *Plane) Apply(ctx context.Context, cfg *config.Config) error {
	err := p.apply(ctx, cfg)
	mx := p.opts.Metrics
	if err != nil {
		mx.Reloads.WithLabelValues("failure").Inc()
		mx.ReloadFailing.Set(1)
		return err
	}
	mx.Reloads.WithLabelValues("success").Inc()
	mx.ReloadFailing.Set(0)
	mx.LastReload.SetToCurrentTime()
	return nil
}

func (p *Plane) apply(ctx context.Context, cfg *config.Config) error {
	tickets, err := p.loadTickets(ctx, cfg)
	if err != nil {
		return err
	}
	snap, err := build(ctx, cfg, p.opts.Certs, p.states, p.opts.Metrics, p.opts.Now())
	if err != nil {
		return err
	}
	for _, ls := range snap.Listeners { // before any listener sees the routes
		ls.Route.Access = p.opts.AccessLog
	}
	if ref := TicketKeysRef(cfg); ref != "" {
		snap.Refs = append(snap.Refs, ref)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("dataplane: shut down")
	}
	// Bind new sockets first: a bind failure must leave everything as it was.
	fresh := map[string]net.Listener{}
	for _, ls := range snap.Listeners {
		if p.listeners[ls.Bind] != nil {
			continue
		}
		ln, err := p.opts.Listen("tcp", ls.Bind)
		if err != nil {
			for _, f := range fresh {
				f.Close()
			}
			return fmt.Errorf("listener %s: binding %s: %w", ls.Key, ls.Bind, err)
		}
		fresh[ls.Bind] = ln
	}
	freshUDP, err := p.bindUDP(snap)
	if err != nil {
		for _, f := range fresh {
			f.Close()
		}
		return err
	}
	p.gen++
	snap.Generation = p.gen
	keep := map[string]bool{}
	for _, ls := range snap.Listeners {
		keep[ls.Bind] = true
		if ln, ok := fresh[ls.Bind]; ok {
			p.listeners[ls.Bind] = proxy.NewListener(ln, ls.Route, proxy.ListenerOptions{
				Forwarder: p.forwarder, Logger: p.opts.Logger, Metrics: p.opts.Metrics, Challenges: p.opts.Challenges,
			})
		} else {
			p.listeners[ls.Bind].Update(ls.Route)
		}
		if tickets != nil {
			p.listeners[ls.Bind].SetSessionTicketKeys(tickets)
		} else {
			p.listeners[ls.Bind].SetSessionTicketKeys(p.autoTickets)
		}
	}
	for bind, l := range p.listeners {
		if keep[bind] {
			continue
		}
		delete(p.listeners, bind)
		// The address is free when Apply returns (a start right after a
		// stop binds it again); the connections drain behind.
		if err := l.StopAccepting(); err != nil {
			p.opts.Logger.Warn("closing a removed listener", "bind", bind, "err", err)
		}
		p.draining.Add(1)
		go func() {
			defer p.draining.Done()
			ctx, cancel := context.WithTimeout(context.Background(), p.opts.DrainTimeout)
			defer cancel()
			if err := l.Shutdown(ctx); err != nil {
				p.opts.Logger.Warn("removed listener did not drain in time", "bind", bind, "err", err)
			}
		}()
	}
	p.switchUDP(snap, freshUDP)
	p.tickets = tickets
	p.current.Store(snap)
	p.states.Retain(memberAddrs(cfg))
	tlsKeys := map[string]bool{}
	for _, ls := range snap.Listeners {
		for _, pol := range poolsOf(ls.Route) {
			tlsKeys[pol.TLSKey()] = true
		}
	}
	p.forwarder.RetainTLS(tlsKeys)
	p.restartChecksLocked(cfg)
	p.syncPeersLocked(cfg)
	p.publish(snap)
	return nil
}

// publish logs the snapshot's warnings and exports its certificates.
func (p *Plane) publish(snap *Snapshot) {
	mx := p.opts.Metrics
	mx.Generation.Set(float64(snap.Generation))
	mx.Certificates.Set(servedCertificates(snap), p.opts.Now)
	for _, w := range snap.Warnings {
		p.opts.Logger.Warn("configuration warning", "path", w.Path, "problem", w.Message)
	}
	p.opts.Logger.Info("snapshot applied", "generation", snap.Generation, "listeners", len(snap.Listeners), "udp_listeners", len(snap.UDP))
}

// servedCertificates yields each listener's bundles once (a listener with
// additional binds appears in snap.Listeners once per bind).
func servedCertificates(snap *Snapshot) iter.Seq[metrics.ServedCertificate] {
	return func(yield func(metrics.ServedCertificate) bool) {
		seen := map[string]bool{}
		for _, ls := range snap.Listeners {
			if seen[ls.Key] {
				continue
			}
			seen[ls.Key] = true
			for _, b := range ls.Bundles {
				if !yield(metrics.ServedCertificate{Listener: ls.Key, Ref: b.Ref, Names: b.Names, NotBefore: b.NotBefore, NotAfter: b.NotAfter}) {
					return
				}
			}
		}
	}
}

// Shutdown stops accepting on every listener and waits, at most until ctx is
// done, for requests in flight to finish.
func (p *Plane) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	ls := p.listeners
	p.listeners = map[string]*proxy.Listener{}
	for bind, r := range p.relays {
		if err := r.Close(); err != nil {
			p.opts.Logger.Warn("closing a UDP listener", "bind", bind, "err", err)
		}
	}
	p.relays = map[string]*udprelay.Relay{}
	p.stopPeersLocked()
	if p.checks != nil {
		p.checks.cancel()
		p.draining.Add(1)
		go func(c *checks) { defer p.draining.Done(); c.wg.Wait() }(p.checks)
		p.checks = nil
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(ls))
	for bind, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Shutdown(ctx); err != nil {
				errs <- fmt.Errorf("listener %s: %w", bind, err)
			}
		}()
	}
	wg.Wait()
	p.draining.Wait()
	p.forwarder.CloseIdle()
	close(errs)
	var all []error
	for e := range errs {
		all = append(all, e)
	}
	return errors.Join(all...)
}

// memberAddrs lists every pool's member addresses, for States.Retain.
func memberAddrs(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	for _, pl := range cfg.Pools {
		for _, m := range pl.Members {
			out[pl.Key()] = append(out[pl.Key()], net.JoinHostPort(m.Address, fmt.Sprint(m.ProtocolPort)))
		}
	}
	return out
}

// poolsOf lists the pools a route can send to.
func poolsOf(r *proxy.Route) []*lb.Pool {
	var out []*lb.Pool
	if r.Pool != nil {
		out = append(out, r.Pool)
	}
	return append(out, r.Router.Targets()...)
}
