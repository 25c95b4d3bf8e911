package dataplane

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/proxy"
	"github.com/terminator-proxy/terminator/proxy/l7"
	"github.com/terminator-proxy/terminator/proxy/lb"
	"github.com/terminator-proxy/terminator/sni"
)

// Snapshot is one validated generation of the data plane. It is immutable.
type Snapshot struct {
	Generation uint64
	Config     *config.Config
	Listeners  []ListenerSnapshot
	UDP        []UDPSnapshot // UDP listeners, served by udprelay
	// Warnings are problems that do not stop serving (expired
	// certificates, ignored ciphers); they are logged loudly at apply.
	Warnings config.Problems
	// Refs lists every reference the snapshot read, for watchers.
	Refs []string
}

// ListenerSnapshot is one listener's part of a snapshot.
type ListenerSnapshot struct {
	Key     string
	Bind    string
	Route   *proxy.Route
	Bundles []*certs.Bundle // default first; empty for HTTP listeners
}

// fetchParallelism bounds concurrent fetches from remote secret stores.
const fetchParallelism = 16

// Build fetches and validates everything cfg refers to and returns the
// snapshot, or every problem found (as config.Problems, each with its
// path). cfg must have passed Validate. now decides certificate validity.
func Build(ctx context.Context, cfg *config.Config, mgr certs.Manager, mx *metrics.Metrics, now time.Time) (*Snapshot, error) {
	return build(ctx, cfg, mgr, nil, mx, now)
}

// build is Build with member states that survive reloads (nil: fresh).
func build(ctx context.Context, cfg *config.Config, mgr certs.Manager, states *lb.States, mx *metrics.Metrics, now time.Time) (*Snapshot, error) {
	b := &builder{mgr: mgr, mx: mx, bundles: map[string]fetched{}, secrets: map[string]fetched{}}
	b.fetchAll(ctx, cfg)
	snap := &Snapshot{Config: cfg}
	pools := map[string]*lb.Pool{}
	for i := range cfg.Pools {
		pools[cfg.Pools[i].Key()] = b.pool(i, &cfg.Pools[i], states, mx)
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		if !l.Enabled() {
			continue
		}
		if l.Protocol == config.ProtocolUDP {
			spec := udpListener(l, cfg, states)
			for _, bind := range append([]string{l.Bind}, l.AdditionalBinds...) {
				snap.UDP = append(snap.UDP, UDPSnapshot{Key: l.Key(), Bind: bind, Spec: spec})
			}
			continue
		}
		ls, ok := b.listener(i, l, cfg, pools, now)
		if !ok {
			continue // recorded in b.errs
		}
		snap.Listeners = append(snap.Listeners, ls)
		for _, bind := range l.AdditionalBinds { // the same route on more addresses
			more := ls
			more.Bind = bind
			snap.Listeners = append(snap.Listeners, more)
		}
	}
	snap.Warnings = b.warns
	for ref := range b.bundles {
		snap.Refs = append(snap.Refs, ref)
	}
	for ref := range b.secrets {
		snap.Refs = append(snap.Refs, ref)
	}
	if len(b.errs) > 0 {
		return nil, b.errs
	}
	return snap, nil
}

type fetched struct {
	bundle *certs.Bundle
	data   []byte
	err    error
}

type builder struct {
	mgr     certs.Manager
	mx      *metrics.Metrics
	bundles map[string]fetched // by ref; each ref is fetched once
	secrets map[string]fetched
	errs    config.Problems
	warns   config.Problems
}

// fetchAll fetches every distinct reference once, fetchParallelism at a
// time. A fixed set of workers takes the references in turn: a goroutine
// per reference waiting on a semaphore held 100,000 parked stacks (and as
// many for the collector to scan) while a large snapshot loaded.
func (b *builder) fetchAll(ctx context.Context, cfg *config.Config) {
	type job struct {
		ref    string
		secret bool
	}
	var jobs []job
	seen := map[job]bool{}
	want := func(ref string, secret bool) {
		j := job{ref, secret}
		if ref == "" || seen[j] {
			return
		}
		seen[j] = true
		jobs = append(jobs, j)
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		if !l.Enabled() || l.Protocol != config.ProtocolTerminatedHTTPS {
			continue
		}
		for _, r := range l.CertRefs() {
			want(r, false)
		}
		want(l.ClientCATLSContainerRef, true)
		want(l.ClientCRLContainerRef, true)
	}
	for i := range cfg.Pools {
		if p := &cfg.Pools[i]; p.TLSEnabled {
			want(p.TLSContainerRef, false)
			want(p.CATLSContainerRef, true)
			want(p.CRLContainerRef, true)
		}
	}
	results := make([]fetched, len(jobs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(fetchParallelism, len(jobs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(jobs) {
					return
				}
				f := &results[i]
				if jobs[i].secret {
					f.data, f.err = b.mgr.Secret(ctx, jobs[i].ref)
				} else {
					f.bundle, f.err = b.mgr.Bundle(ctx, jobs[i].ref)
				}
			}
		})
	}
	wg.Wait()
	for i, j := range jobs {
		if j.secret {
			b.secrets[j.ref] = results[i]
		} else {
			b.bundles[j.ref] = results[i]
		}
	}
}

func (b *builder) errorf(path, format string, args ...any) {
	b.errs = append(b.errs, config.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// listener builds one listener's part of the snapshot; on failure the
// problems are in b.errs and ok is false.
func (b *builder) listener(i int, l *config.Listener, cfg *config.Config, pools map[string]*lb.Pool, now time.Time) (ls ListenerSnapshot, ok bool) {
	path := fmt.Sprintf("listeners[%d]", i)
	route := &proxy.Route{
		Listener:        l.Key(),
		Headers:         proxy.NewHeaderRules(l.InsertHeaders, l.HSTSMaxAge, l.HSTSIncludeSubdomain, l.HSTSPreload),
		ClientTimeout:   ms(*l.TimeoutClientData),
		ConnectTimeout:  ms(*l.TimeoutMemberConnect),
		MemberTimeout:   ms(*l.TimeoutMemberData),
		ConnectionLimit: l.EffectiveConnectionLimit(),
		AccessLog:       *cfg.Log.AccessLog,
		RequestID:       cfg.Log.RequestID,
		Layer4:          l.Layer4(),
	}
	if rd := l.HTTPSRedirect; rd != nil {
		route.Redirect, route.RedirectCode = "https://", 301
		if rd.Port != 0 {
			route.Redirect = fmt.Sprintf("https://:%d", rd.Port)
		}
		if rd.Code != 0 {
			route.RedirectCode = rd.Code
		}
	}
	if l.Protocol == config.ProtocolPrometheus && b.mx != nil {
		route.Exporter = b.mx.HAProxyExporter()
	}
	for _, c := range l.AllowedCIDRs {
		route.Allowed = append(route.Allowed, netip.MustParsePrefix(c).Masked()) // validated
	}
	for _, c := range l.ProxyProtocolFrom {
		route.ProxyFrom = append(route.ProxyFrom, netip.MustParsePrefix(c).Masked()) // validated
	}
	if ref := l.PoolRef(); ref != "" && cfg.FindPool(ref).Enabled() {
		route.Pool = pools[cfg.FindPool(ref).Key()] // a disabled one leaves none: 503
	}
	router, err := l7.Compile(l7Specs(l, cfg, pools))
	if err != nil {
		b.errorf(path+".l7policies", "%v", err)
		return ListenerSnapshot{}, false
	}
	route.Router = router
	ls = ListenerSnapshot{Key: l.Key(), Bind: l.Bind, Route: route}
	if l.Protocol != config.ProtocolTerminatedHTTPS {
		return ls, true
	}
	before := len(b.errs)
	tlsCfg, bundles := b.tlsConfig(path, l, now)
	if len(b.errs) > before {
		return ls, false
	}
	route.TLS = tlsCfg
	route.TicketLifetime = ms(cfg.TLS.SessionTicketLifetime)
	ls.Bundles = bundles
	return ls, true
}

// l7Specs converts a listener's enabled L7 policies and rules.
func l7Specs(l *config.Listener, cfg *config.Config, pools map[string]*lb.Pool) []l7.PolicySpec[*lb.Pool] {
	var specs []l7.PolicySpec[*lb.Pool]
	for _, pol := range l.L7Policies {
		if !pol.Enabled() {
			continue
		}
		if ref := pol.PoolRef(); ref != "" && strings.EqualFold(pol.Action, "REDIRECT_TO_POOL") && !cfg.FindPool(ref).Enabled() {
			continue // Octavia renders no use_backend for a disabled pool
		}
		spec := l7.PolicySpec[*lb.Pool]{Action: pol.Action, Position: pol.Position, URL: pol.RedirectURL, Prefix: pol.RedirectPrefix, Code: pol.RedirectHTTPCode}
		if ref := pol.PoolRef(); ref != "" {
			spec.Target = pools[cfg.FindPool(ref).Key()]
		}
		for _, r := range pol.Rules {
			if r.Enabled() {
				spec.Rules = append(spec.Rules, l7.RuleSpec{Type: r.Type, Compare: r.CompareType, Key: r.Key, Value: r.Value, Invert: r.Invert})
			}
		}
		specs = append(specs, spec)
	}
	return specs
}

func (b *builder) tlsConfig(path string, l *config.Listener, now time.Time) (*tls.Config, []*certs.Bundle) {
	var def *certs.Bundle
	if l.DefaultTLSContainerRef != "" {
		def = b.serving(path+".default_tls_container_ref", l.DefaultTLSContainerRef, now)
	}
	var sniBundles []*certs.Bundle
	for j, ref := range l.SNIContainerRefs {
		if bd := b.serving(fmt.Sprintf("%s.sni_container_refs[%d]", path, j), ref, now); bd != nil {
			sniBundles = append(sniBundles, bd)
		}
	}
	opts := sni.ServerOptions{ClientAuth: l.ClientAuthentication}
	if ref := l.ClientCATLSContainerRef; ref != "" {
		if f := b.secrets[ref]; f.err != nil {
			b.errorf(path+".client_ca_tls_container_ref", "%v", f.err)
		} else if cas, err := certs.ParseCABundle(ref, f.data); err != nil {
			b.errorf(path+".client_ca_tls_container_ref", "%v", err)
		} else {
			opts.ClientCAs = cas
		}
	}
	if ref := l.ClientCRLContainerRef; ref != "" && opts.ClientCAs != nil {
		if f := b.secrets[ref]; f.err != nil {
			b.errorf(path+".client_crl_container_ref", "%v", f.err)
		} else if rev, err := certs.ParseCRL(ref, f.data, opts.ClientCAs); err != nil {
			b.errorf(path+".client_crl_container_ref", "%v", err)
		} else {
			opts.Revocations = rev
			if !rev.NextUpdate.IsZero() && now.After(rev.NextUpdate) {
				b.warns = append(b.warns, config.Problem{Path: path + ".client_crl_container_ref", Message: fmt.Sprintf("CRL is past its next update (%s); publish a fresh one", rev.NextUpdate.UTC().Format(time.RFC3339))})
			}
		}
	}
	var err error
	opts.MinVersion, opts.MaxVersion, err = config.ParseTLSVersions(l.TLSVersions)
	if err != nil {
		b.errorf(path+".tls_versions", "%v", err)
	}
	opts.CipherSuites, _, err = config.ParseCiphers(l.TLSCiphers)
	if err != nil {
		b.errorf(path+".tls_ciphers", "%v", err)
	}
	opts.NextProtos = l.ALPNProtocols
	if def == nil && len(sniBundles) == 0 {
		return nil, nil
	}
	store, err := sni.NewStore(def, sniBundles, l.StrictSNI)
	if err != nil {
		b.errorf(path, "%v", err)
		return nil, nil
	}
	opts.Store = store
	tc, err := sni.NewServerConfig(opts)
	if err != nil {
		b.errorf(path, "%v", err)
		return nil, nil
	}
	return tc, store.Bundles()
}

// bundle returns the fetched bundle for ref, recording an error (and
// returning nil) when it could not be loaded and a warning when it is
// outside its validity period.
func (b *builder) bundle(path, ref string, now time.Time) *certs.Bundle {
	f := b.bundles[ref]
	if f.err != nil {
		b.errorf(path, "%v", f.err)
		return nil
	}
	if err := f.bundle.CheckValidity(now); err != nil {
		b.warns = append(b.warns, config.Problem{Path: path, Message: err.Error() + "; serving it anyway"})
	}
	return f.bundle
}

// serving is bundle for a listener's own certificates, which must also be
// fit to serve as a TLS server certificate.
func (b *builder) serving(path, ref string, now time.Time) *certs.Bundle {
	bd := b.bundle(path, ref, now)
	if bd == nil {
		return nil
	}
	if err := bd.CheckServerUse(); err != nil {
		b.errorf(path, "%v", err)
		return nil
	}
	if bd.IsCA {
		b.warns = append(b.warns, config.Problem{Path: path, Message: "certificate ref " + ref + ": is a CA certificate (basicConstraints CA:TRUE); serve a leaf issued by it instead"})
	}
	return bd
}

func (b *builder) pool(i int, p *config.Pool, states *lb.States, mx *metrics.Metrics) *lb.Pool {
	specs := make([]lb.MemberSpec, len(p.Members))
	for i, m := range p.Members {
		specs[i] = lb.MemberSpec{
			ID: m.ID, Name: m.Name, Address: m.Address, Port: m.ProtocolPort,
			Weight: *m.Weight, Backup: m.Backup, Enabled: m.Enabled(), MaxConnections: m.MaxConnections,
		}
	}
	spec := lb.PoolSpec{Name: p.Key(), Algorithm: p.LBAlgorithm, Members: specs}
	switch p.Protocol {
	case "PROXY":
		spec.ProxyVersion = 1
	case "PROXYV2":
		spec.ProxyVersion = 2
	}
	if sp := p.SessionPersistence; sp != nil {
		spec.Persistence, spec.CookieName = sp.Type, sp.CookieName
	}
	if p.TLSEnabled {
		spec.TLS, spec.TLSKey = b.poolTLS(fmt.Sprintf("pools[%d]", i), p)
	}
	spec.HTTP2 = p.H2C || p.TLSEnabled && slices.Contains(p.ALPNProtocols, "h2")
	return lb.NewPool(spec, states, mx)
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// poolTLS builds a re-encrypting pool's client config and a key naming its
// content. Members are verified against the pool's CA (chain, serverAuth,
// CRL) when it has one, in VerifyConnection; the host name is not checked,
// members being addressed by IP.
func (b *builder) poolTLS(path string, p *config.Pool) (*tls.Config, string) {
	key := sha256.New()
	fmt.Fprintf(key, "%s\x00%v\x00%s\x00%v\x00", p.Key(), p.TLSVersions, p.TLSCiphers, p.ALPNProtocols)
	cfg := &tls.Config{NextProtos: []string{"http/1.1"}, InsecureSkipVerify: true} //nolint:gosec // verified below when a CA is set
	if slices.Contains(p.ALPNProtocols, "h2") {
		cfg.NextProtos = p.ALPNProtocols // the HTTP/2 transport offers these; HTTP/1.1 pools always ask for http/1.1
	}
	var err error
	if cfg.MinVersion, cfg.MaxVersion, err = config.ParseTLSVersions(p.TLSVersions); err != nil {
		b.errorf(path+".tls_versions", "%v", err)
	}
	if p.TLSCiphers != "" {
		if cfg.CipherSuites, _, err = config.ParseCiphers(p.TLSCiphers); err != nil {
			b.errorf(path+".tls_ciphers", "%v", err)
		}
	}
	if ref := p.TLSContainerRef; ref != "" {
		if f := b.bundles[ref]; f.err != nil {
			b.errorf(path+".tls_container_ref", "%v", f.err)
		} else {
			c := *f.bundle.TLS
			c.Leaf = f.bundle.Leaf() // for SupportsCertificate when a member asks for a client certificate
			cfg.Certificates = []tls.Certificate{c}
			key.Write(c.Certificate[0])
		}
	}
	if ref := p.CATLSContainerRef; ref != "" {
		f := b.secrets[ref]
		cas, err := certs.ParseCABundle(ref, f.data)
		if f.err != nil {
			err = f.err
		}
		if err != nil {
			b.errorf(path+".ca_tls_container_ref", "%v", err)
			return nil, ""
		}
		key.Write(f.data)
		var revoked *certs.Revocations
		if crlRef := p.CRLContainerRef; crlRef != "" {
			cf := b.secrets[crlRef]
			if cf.err != nil {
				b.errorf(path+".crl_container_ref", "%v", cf.err)
			} else if revoked, err = certs.ParseCRL(crlRef, cf.data, cas); err != nil {
				b.errorf(path+".crl_container_ref", "%v", err)
			}
			key.Write(cf.data)
		}
		roots := x509.NewCertPool()
		for _, ca := range cas {
			roots.AddCert(ca)
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("member presented no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			chains, err := cs.PeerCertificates[0].Verify(opts)
			if err != nil {
				return fmt.Errorf("member certificate: %w", err)
			}
			for _, c := range chains[0] {
				if revoked.IsRevoked(c) {
					return fmt.Errorf("member certificate %q is revoked", c.Subject.CommonName)
				}
			}
			return nil
		}
	}
	return cfg, hex.EncodeToString(key.Sum(nil))
}
