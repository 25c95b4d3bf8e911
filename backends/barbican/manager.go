package barbican

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/keymanager/v1/containers"
	"github.com/gophercloud/gophercloud/v2/openstack/keymanager/v1/secrets"

	"github.com/terminator-proxy/terminator/certs"
)

// Options configure a Manager: either Keystone authentication (Auth, with
// AllowReauth so expired tokens are re-issued) or no-auth development mode
// (Endpoint and ProjectID, optionally UserID and Roles).
type Options struct {
	Auth *gophercloud.AuthOptions
	// Region and Interface select the key-manager endpoint in the catalog;
	// Endpoint overrides it.
	Region, Interface, Endpoint string
	// No-auth mode: sent as X-Project-Id, X-User-Id, X-Roles.
	ProjectID, UserID, Roles string
	// Recheck is how often references in use are re-checked (default 5m,
	// ±10% jitter).
	Recheck time.Duration
	// HTTPClient, if set, carries every request (tests count requests).
	HTTPClient *http.Client
	Logger     *slog.Logger
	// OnStatus, if set, is told after each re-check whether a reference is
	// still readable (err nil) and since when it is not.
	OnStatus func(ref string, err error, since time.Time)
}

// Manager serves Barbican references. Run its Run in a goroutine the
// caller owns.
type Manager struct {
	opts   Options
	client *gophercloud.ServiceClient
	log    *slog.Logger
	user   string // terminator's user id, for the ACL hint

	mu      sync.Mutex // guards the fields below
	entries map[string]*entry
	watched map[string]bool
	changed chan struct{}
}

type entry struct {
	ready      chan struct{} // closed when the first fetch finished
	bundle     *certs.Bundle
	data       []byte // raw secrets
	err        error
	staleSince time.Time
}

var hrefPath = regexp.MustCompile(`^/v1/(secrets|containers)/([0-9a-fA-F-]{36})/?$`)

// New authenticates (unless in no-auth mode) and returns a Manager.
func New(ctx context.Context, o Options) (*Manager, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Recheck <= 0 {
		o.Recheck = 5 * time.Minute
	}
	m := &Manager{opts: o, log: o.Logger, entries: map[string]*entry{}, watched: map[string]bool{}, changed: make(chan struct{}, 1)}
	var pc *gophercloud.ProviderClient
	if o.Auth != nil {
		auth := *o.Auth
		auth.AllowReauth = true
		var err error
		pc, err = openstack.NewClient(auth.IdentityEndpoint)
		if err != nil {
			return nil, fmt.Errorf("barbican: keystone %s: %w", auth.IdentityEndpoint, err)
		}
		if o.HTTPClient != nil {
			pc.HTTPClient = *o.HTTPClient
		}
		if err := openstack.Authenticate(ctx, pc, auth); err != nil {
			return nil, fmt.Errorf("barbican: keystone authentication at %s failed: %w", auth.IdentityEndpoint, err)
		}
		if r, ok := pc.GetAuthResult().(tokens.CreateResult); ok {
			if u, err := r.ExtractUser(); err == nil {
				m.user = u.ID
			}
		}
		avail := gophercloud.Availability(o.Interface)
		if avail == "" {
			avail = gophercloud.AvailabilityPublic
		}
		c, err := openstack.NewKeyManagerV1(pc, gophercloud.EndpointOpts{Region: o.Region, Availability: avail})
		if err != nil && o.Endpoint == "" {
			return nil, fmt.Errorf("barbican: no key-manager endpoint in the catalog (set barbican.endpoint): %w", err)
		}
		if c == nil {
			c = &gophercloud.ServiceClient{ProviderClient: pc, Type: "key-manager"}
		}
		m.client = c
	} else {
		if o.Endpoint == "" || o.ProjectID == "" {
			return nil, errors.New("barbican: without Keystone auth, endpoint and project_id are required (no-auth development mode)")
		}
		pc = &gophercloud.ProviderClient{}
		if o.HTTPClient != nil {
			pc.HTTPClient = *o.HTTPClient
		} else {
			pc.HTTPClient = http.Client{Timeout: 30 * time.Second}
		}
		hdr := map[string]string{"X-Project-Id": o.ProjectID}
		if o.UserID != "" {
			hdr["X-User-Id"] = o.UserID
			m.user = o.UserID
		}
		if o.Roles != "" {
			hdr["X-Roles"] = o.Roles
		}
		m.client = &gophercloud.ServiceClient{ProviderClient: pc, Type: "key-manager", MoreHeaders: hdr}
	}
	if o.Endpoint != "" {
		ep := strings.TrimSuffix(o.Endpoint, "/") + "/"
		ep = strings.TrimSuffix(ep, "v1/")
		m.client.Endpoint, m.client.ResourceBase = ep, ep+"v1/"
	}
	return m, nil
}

// parseRef returns "secrets" or "containers" and the UUID of an href.
func parseRef(ref string) (kind, id string, err error) {
	u, err := url.Parse(ref)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return "", "", fmt.Errorf("not a Barbican href (want https://HOST/v1/secrets/UUID or …/v1/containers/UUID)")
	}
	mm := hrefPath.FindStringSubmatch(u.Path)
	if mm == nil {
		return "", "", fmt.Errorf("not a Barbican href: the path must be /v1/secrets/UUID or /v1/containers/UUID")
	}
	return mm[1], mm[2], nil
}

// Bundle implements certs.Manager. A reference is fetched once; later
// calls, and concurrent ones, share the result.
func (m *Manager) Bundle(ctx context.Context, ref string) (*certs.Bundle, error) {
	e := m.get(ctx, ref, false)
	if e.err != nil {
		return nil, e.err
	}
	return e.bundle, nil
}

// Secret implements certs.Manager: a secret's raw payload (client CA, CRL).
func (m *Manager) Secret(ctx context.Context, ref string) ([]byte, error) {
	e := m.get(ctx, ref, true)
	if e.err != nil {
		return nil, e.err
	}
	return e.data, nil
}

// get returns the cached entry for ref, fetching it once. Failed fetches
// are not cached, so the next reload tries again.
func (m *Manager) get(ctx context.Context, ref string, raw bool) *entry {
	key := ref
	if raw {
		key = "raw:" + ref
	}
	m.mu.Lock()
	e, ok := m.entries[key]
	if !ok {
		e = &entry{ready: make(chan struct{})}
		m.entries[key] = e
	}
	m.mu.Unlock()
	if ok {
		select {
		case <-e.ready:
		case <-ctx.Done():
			return &entry{err: &certs.RefError{Ref: ref, Err: ctx.Err()}}
		}
		if e.err == nil {
			return e
		}
		// A failed fetch: let this caller try again.
		m.mu.Lock()
		if m.entries[key] == e {
			delete(m.entries, key)
		}
		m.mu.Unlock()
		return m.get(ctx, ref, raw)
	}
	e.bundle, e.data, e.err = m.fetch(ctx, ref, raw)
	if e.err != nil {
		e.err = &certs.RefError{Ref: ref, Err: e.err}
	}
	close(e.ready)
	return e
}

func (m *Manager) fetch(ctx context.Context, ref string, raw bool) (*certs.Bundle, []byte, error) {
	kind, id, err := parseRef(ref)
	if err != nil {
		return nil, nil, err
	}
	if raw {
		if kind != "secrets" {
			return nil, nil, errors.New("a CA or CRL reference must be a secret, not a container")
		}
		data, err := m.payload(ctx, id, "text/plain")
		return nil, data, err
	}
	if kind == "secrets" {
		data, err := m.payload(ctx, id, "application/octet-stream")
		if err != nil {
			return nil, nil, err
		}
		b, err := certs.ParsePKCS12(ref, data, nil)
		if errors.Is(err, certs.ErrNeedsPassphrase) {
			return nil, nil, fmt.Errorf("%w: passphrase protected PKCS12 certificates are not supported; store it without one (openssl pkcs12 -export … -passout pass:)", certs.ErrNeedsPassphrase)
		}
		return b, nil, unwrapRef(err)
	}
	c, err := containers.Get(ctx, m.client, id).Extract()
	if err != nil {
		return nil, nil, m.explain(err, ref)
	}
	parts := map[string][]byte{}
	for _, s := range c.SecretRefs {
		switch s.Name {
		case "certificate", "private_key", "intermediates", "private_key_passphrase":
		default:
			continue
		}
		_, sid, err := parseRef(s.SecretRef)
		if err != nil {
			return nil, nil, fmt.Errorf("container secret %q: %w", s.Name, err)
		}
		if parts[s.Name], err = m.payload(ctx, sid, "text/plain"); err != nil {
			return nil, nil, fmt.Errorf("container secret %q: %w", s.Name, err)
		}
	}
	if parts["certificate"] == nil {
		return nil, nil, fmt.Errorf("%w: the container has no secret named certificate", certs.ErrNoCertificate)
	}
	if parts["private_key"] == nil {
		return nil, nil, fmt.Errorf("%w: the container has no secret named private_key", certs.ErrNoKey)
	}
	var pass []byte
	if p := parts["private_key_passphrase"]; p != nil {
		pass = []byte(strings.TrimRight(string(p), "\r\n"))
	}
	b, err := certs.ParseParts(ref, parts["certificate"], parts["private_key"], parts["intermediates"], pass)
	return b, nil, unwrapRef(err)
}

// payload reads a secret's payload: first as preferred (one request), and
// only when Barbican answers 406 (stored in another content type) after
// looking up the stored type.
func (m *Manager) payload(ctx context.Context, id, preferred string) ([]byte, error) {
	data, err := secrets.GetPayload(ctx, m.client, id, secrets.GetPayloadOpts{PayloadContentType: preferred}).Extract()
	if err == nil {
		return data, nil
	}
	if !gophercloud.ResponseCodeIs(err, http.StatusNotAcceptable) {
		return nil, m.explain(err, id)
	}
	s, err := secrets.Get(ctx, m.client, id).Extract()
	if err != nil {
		return nil, m.explain(err, id)
	}
	data, err = secrets.GetPayload(ctx, m.client, id, secrets.GetPayloadOpts{PayloadContentType: s.ContentTypes["default"]}).Extract()
	if err != nil {
		return nil, m.explain(err, id)
	}
	return data, nil
}

// explain turns Barbican answers into causes an operator can act on.
func (m *Manager) explain(err error, what string) error {
	user := m.user
	if user == "" {
		user = "<terminator's user id>"
	}
	switch {
	case gophercloud.ResponseCodeIs(err, http.StatusUnauthorized), gophercloud.ResponseCodeIs(err, http.StatusForbidden):
		return fmt.Errorf("%w: Barbican refused to let terminator read %s; grant it: openstack acl user add --user %s <secret or container href> (for a container, also each of its secrets)", certs.ErrAccessDenied, what, user)
	case gophercloud.ResponseCodeIs(err, http.StatusNotFound):
		return fmt.Errorf("%w: %s does not exist in Barbican (deleted, or another project's)", certs.ErrNotFound, what)
	case gophercloud.ResponseCodeIs(err, http.StatusRequestEntityTooLarge):
		return fmt.Errorf("Barbican refuses %s: larger than its max_allowed_secret_in_bytes (default 10000)", what)
	case gophercloud.ResponseCodeIs(err, http.StatusNotAcceptable), gophercloud.ResponseCodeIs(err, http.StatusUnsupportedMediaType):
		return fmt.Errorf("%w: Barbican cannot give %s in its stored content type", certs.ErrUnreadable, what)
	}
	return fmt.Errorf("Barbican unreachable or failing for %s: %w", what, err)
}

func unwrapRef(err error) error {
	var re *certs.RefError
	if errors.As(err, &re) {
		return re.Err
	}
	return err
}
