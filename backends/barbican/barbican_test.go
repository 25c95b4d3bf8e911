package barbican_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/keymanager/v1/acls"
	"github.com/gophercloud/gophercloud/v2/openstack/keymanager/v1/containers"
	"github.com/gophercloud/gophercloud/v2/openstack/keymanager/v1/secrets"
	"github.com/youmark/pkcs8"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/terminator-proxy/terminator/backends/barbican"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/pki"
)

// fixture is one mode's Barbican: an admin client to store things, and
// options for a Manager that reads them.
type fixture struct {
	mode  string
	admin *gophercloud.ServiceClient
	opts  barbican.Options
}

func fixtures(t *testing.T) []fixture {
	var out []fixture
	for _, mode := range []string{"noauth", "keystone"} {
		env := envs[mode]
		f := fixture{mode: mode}
		if mode == "noauth" {
			project := strings.ReplaceAll(t.Name(), "/", "_")
			f.admin = noauthClient(env["BARBICAN_ENDPOINT"], project, "", "")
			f.opts = barbican.Options{Endpoint: env["BARBICAN_ENDPOINT"], ProjectID: project}
		} else {
			ao := gophercloud.AuthOptions{IdentityEndpoint: env["OS_AUTH_URL"], Username: env["OS_USERNAME"], Password: env["OS_PASSWORD"],
				DomainID: "default", Scope: &gophercloud.AuthScope{ProjectName: env["OS_PROJECT_NAME"], DomainID: "default"}}
			pc, err := openstack.AuthenticatedClient(context.Background(), ao)
			if err != nil {
				t.Fatal(err)
			}
			if f.admin, err = openstack.NewKeyManagerV1(pc, gophercloud.EndpointOpts{Region: "RegionOne"}); err != nil {
				t.Fatal(err)
			}
			f.opts = barbican.Options{Auth: &ao, Region: "RegionOne"}
		}
		f.opts.Logger = slog.New(slog.DiscardHandler)
		out = append(out, f)
	}
	return out
}

func noauthClient(endpoint, project, user, roles string) *gophercloud.ServiceClient {
	hdr := map[string]string{"X-Project-Id": project}
	if user != "" {
		hdr["X-User-Id"], hdr["X-Roles"] = user, roles
	}
	return &gophercloud.ServiceClient{
		ProviderClient: &gophercloud.ProviderClient{HTTPClient: http.Client{Timeout: 30 * time.Second}},
		Endpoint:       endpoint, ResourceBase: endpoint + "v1/", Type: "key-manager", MoreHeaders: hdr,
	}
}

func (f fixture) manager(t *testing.T, mutate func(*barbican.Options)) *barbican.Manager {
	t.Helper()
	o := f.opts
	if mutate != nil {
		mutate(&o)
	}
	m, err := barbican.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// storeP12 stores a PKCS#12 the way the seed does: opaque, octet-stream,
// base64 transfer encoding.
func (f fixture) storeP12(t *testing.T, data []byte) string {
	t.Helper()
	s, err := secrets.Create(context.Background(), f.admin, secrets.CreateOpts{
		Name: "tls", SecretType: secrets.OpaqueSecret, Payload: base64.StdEncoding.EncodeToString(data),
		PayloadContentType: "application/octet-stream", PayloadContentEncoding: "base64",
	}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	return s.SecretRef
}

func (f fixture) storeText(t *testing.T, name, text string) string {
	t.Helper()
	s, err := secrets.Create(context.Background(), f.admin, secrets.CreateOpts{Name: name, SecretType: secrets.OpaqueSecret, Payload: text, PayloadContentType: "text/plain"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	return s.SecretRef
}

func (f fixture) container(t *testing.T, kind containers.ContainerType, parts map[string]string) string {
	t.Helper()
	var refs []containers.SecretRef
	for name, text := range parts {
		refs = append(refs, containers.SecretRef{Name: name, SecretRef: f.storeText(t, name, text)})
	}
	c, err := containers.Create(context.Background(), f.admin, containers.CreateOpts{Name: "tls", Type: kind, SecretRefs: refs}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	return c.ContainerRef
}

func p12For(t *testing.T, ca *pki.CA, name, password string) ([]byte, *x509.Certificate) {
	c, k := tu.Leaf(t, ca, pki.ECDSAP256, name)
	data, err := pkcs12.Modern.Encode(k, c, []*x509.Certificate{ca.Cert}, password)
	if err != nil {
		t.Fatal(err)
	}
	return data, c
}

// plane serves refs on one listener and returns its address and a
// function that switches the listener to other refs (a reload).
func plane(t *testing.T, m *barbican.Manager, refs ...string) (string, func(...string) error) {
	t.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(backend.Close)
	_, port := tu.HostPort(t, backend.URL)
	reg := certs.NewRegistry()
	reg.Register("http", m)
	reg.Register("https", m)
	p := dataplane.New(dataplane.Options{Certs: reg, Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New()})
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	apply := func(refs ...string) error {
		yaml := fmt.Sprintf("listeners:\n  - {name: web, protocol: TERMINATED_HTTPS, bind: \"127.0.0.1:0\", default_tls_container_ref: %q, sni_container_refs: [%s], default_pool: app}\npools:\n  - {name: app, members: [{address: 127.0.0.1, protocol_port: %s}]}\n",
			refs[0], quoteAll(refs[1:]), port)
		cfg, _, err := config.Parse([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return p.Apply(context.Background(), cfg)
	}
	if err := apply(refs...); err != nil {
		t.Fatal(err)
	}
	return p.Addr("127.0.0.1:0").String(), apply
}

func quoteAll(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

func served(t *testing.T, addr, name string, roots *x509.CertPool) tls.ConnectionState {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: name})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState()
}

func TestSecretAndContainerServed(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.mode, func(t *testing.T) {
			m := f.manager(t, nil)
			ca := tu.CA(t, "barbican CA")
			p12, p12Cert := p12For(t, ca, "p12.example", "")
			secretRef := f.storeP12(t, p12)

			inter, _ := ca.NewIntermediate("barbican intermediate", pki.ECDSAP256)
			c, k := tu.Leaf(t, inter, pki.ECDSAP256, "container.example")
			encDER, _ := pkcs8.MarshalPrivateKey(k, []byte("s3cret"), nil)
			containerRef := f.container(t, containers.CertificateContainer, map[string]string{
				"certificate":            string(pki.CertPEM(c)),
				"private_key":            string(pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: encDER})),
				"intermediates":          string(pki.CertPEM(inter.Cert)),
				"private_key_passphrase": "s3cret",
			})
			// Octavia keeps hrefs with whatever host they were created at.
			u, _ := url.Parse(secretRef)
			u.Scheme, u.Host = "https", "barbican.cloud.example:9311"
			foreignHost := u.String()
			addr, _ := plane(t, m, foreignHost, containerRef)
			roots := tu.Pool(ca)
			if cs := served(t, addr, "p12.example", roots); !cs.PeerCertificates[0].Equal(p12Cert) {
				t.Fatal("the PKCS#12 secret is not served")
			}
			cs := served(t, addr, "container.example", roots)
			if !cs.PeerCertificates[0].Equal(c) || len(cs.PeerCertificates) != 2 || !cs.PeerCertificates[1].Equal(inter.Cert) {
				t.Fatalf("the container is not served with its chain (%d certificates)", len(cs.PeerCertificates))
			}
		})
	}
}

func TestRotationByRefChangeUnderLoad(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.mode, func(t *testing.T) {
			m := f.manager(t, nil)
			ca := tu.CA(t, "rotation CA")
			old, _ := p12For(t, ca, "rot.example", "")
			addr, apply := plane(t, m, f.storeP12(t, old))
			var ok, failed atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for i := range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := tu.Client(tu.Pool(ca), "rot.example", i == 1)
					defer c.CloseIdleConnections()
					for n := 0; ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						if n%3 == 0 {
							c.CloseIdleConnections()
						}
						resp, err := c.Get("https://" + addr + "/")
						if err != nil || resp.StatusCode != 200 {
							failed.Add(1)
							continue
						}
						resp.Body.Close()
						ok.Add(1)
					}
				}()
			}
			for range 3 {
				next, nextCert := p12For(t, ca, "rot.example", "")
				if err := apply(f.storeP12(t, next)); err != nil {
					t.Fatal(err)
				}
				if cs := served(t, addr, "rot.example", tu.Pool(ca)); !cs.PeerCertificates[0].Equal(nextCert) {
					t.Fatal("the replacement is not served after the ref changed")
				}
			}
			close(stop)
			wg.Wait()
			t.Logf("%d requests ok, %d failed", ok.Load(), failed.Load())
			if failed.Load() != 0 || ok.Load() == 0 {
				t.Fatalf("%d requests failed during rotation", failed.Load())
			}
		})
	}
}

func TestBarbicanDownKeepsServing(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.mode, func(t *testing.T) { barbicanDown(t, f) })
	}
}

func portOf(u string) string {
	u = strings.TrimSuffix(strings.TrimSuffix(u, "/"), "/v3")
	return u[strings.LastIndex(u, ":")+1:]
}

func barbicanDown(t *testing.T, f fixture) {
	env := envs[f.mode]
	upArgs := []string{"up", env["STATE"], f.mode, portOf(env["BARBICAN_ENDPOINT"])}
	if f.mode == "keystone" {
		upArgs = append(upArgs, portOf(env["OS_AUTH_URL"]))
	}
	m := f.manager(t, nil)
	ca := tu.CA(t, "down CA")
	data, cert := p12For(t, ca, "down.example", "")
	ref := f.storeP12(t, data)
	next, nextCert := p12For(t, ca, "down.example", "")
	nextRef := f.storeP12(t, next)
	addr, apply := plane(t, m, ref)
	if out, err := exec.Command("../../scripts/barbican-dev", "down", env["STATE"]).CombinedOutput(); err != nil {
		t.Fatalf("stopping Barbican: %v %s", err, out)
	}
	restarted := false
	defer func() {
		if !restarted {
			exec.Command("../../scripts/barbican-dev", upArgs...).Run()
		}
	}()
	if cs := served(t, addr, "down.example", tu.Pool(ca)); !cs.PeerCertificates[0].Equal(cert) {
		t.Fatal("traffic stopped with Barbican down")
	}
	if err := apply(ref); err != nil {
		t.Fatalf("a reload with unchanged refs needs no Barbican, but failed: %v", err)
	}
	if err := apply(nextRef); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("changing the ref with Barbican down: %v", err)
	}
	if cs := served(t, addr, "down.example", tu.Pool(ca)); !cs.PeerCertificates[0].Equal(cert) {
		t.Fatal("a failed reload replaced the served certificate")
	}
	if out, err := exec.Command("../../scripts/barbican-dev", upArgs...).CombinedOutput(); err != nil {
		t.Fatalf("restarting Barbican: %v %s", err, out)
	}
	restarted = true
	if err := apply(nextRef); err != nil {
		t.Fatalf("after Barbican came back: %v", err)
	}
	if cs := served(t, addr, "down.example", tu.Pool(ca)); !cs.PeerCertificates[0].Equal(nextCert) {
		t.Fatal("the change did not go through after Barbican came back")
	}
}

func TestACLDenialAndDeletion(t *testing.T) {
	f := fixtures(t)[0]
	ca := tu.CA(t, "acl CA")
	data, _ := p12For(t, ca, "acl.example", "")
	ref := f.storeP12(t, data)
	_, id, _ := strings.Cut(ref, "/v1/secrets/")
	// terminator as a user of another project, with no ACL on the secret.
	denied := f.manager(t, func(o *barbican.Options) { o.ProjectID, o.UserID, o.Roles = "other", "terminator-user", "reader" })
	_, err := denied.Bundle(context.Background(), ref)
	if !errors.Is(err, certs.ErrAccessDenied) || !strings.Contains(err.Error(), "openstack acl user add --user terminator-user") {
		t.Fatalf("ACL denial: %v", err)
	}
	if _, err := acls.SetSecretACL(context.Background(), f.admin, id, acls.SetOpts{{Type: "read", Users: &[]string{"terminator-user"}, ProjectAccess: ptr(false)}}).Extract(); err != nil {
		t.Fatal(err)
	}
	allowed := f.manager(t, func(o *barbican.Options) { o.ProjectID, o.UserID, o.Roles = "other", "terminator-user", "reader" })
	if _, err := allowed.Bundle(context.Background(), ref); err != nil {
		t.Fatalf("after the ACL grant: %v", err)
	}
	// A deleted secret: the cached bundle keeps serving, the re-check says so.
	var stale atomic.Value
	watcher := f.manager(t, func(o *barbican.Options) {
		o.Recheck = 200 * time.Millisecond
		o.OnStatus = func(r string, err error, _ time.Time) {
			if err != nil {
				stale.Store(err.Error())
			}
		}
	})
	if _, err := watcher.Bundle(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	watcher.Watch([]string{ref})
	if err := secrets.Delete(context.Background(), f.admin, id).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for stale.Load() == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if s, _ := stale.Load().(string); !strings.Contains(s, "does not exist") {
		t.Fatalf("deletion not reported: %v", stale.Load())
	}
	if _, err := watcher.Bundle(context.Background(), ref); err != nil {
		t.Fatalf("the cached bundle must keep serving after deletion: %v", err)
	}
}

func TestWrongInputs(t *testing.T) {
	for _, f := range fixtures(t) {
		t.Run(f.mode, func(t *testing.T) { wrongInputs(t, f) })
	}
}

func wrongInputs(t *testing.T, f fixture) {
	m := f.manager(t, nil)
	ca := tu.CA(t, "bad CA")
	withPassword, _ := p12For(t, ca, "pw.example", "pw")
	c, _ := tu.Leaf(t, ca, pki.ECDSAP256, "x.example")
	cases := []struct {
		name string
		ref  string
		want error
		text string
	}{
		{"container without certificate", f.container(t, containers.GenericContainer, map[string]string{"private_key": "x"}), certs.ErrNoCertificate, "no secret named certificate"},
		{"container without key", f.container(t, containers.CertificateContainer, map[string]string{"certificate": string(pki.CertPEM(c))}), certs.ErrNoKey, "no secret named private_key"},
		{"PKCS#12 with a password", f.storeP12(t, withPassword), certs.ErrNeedsPassphrase, "passphrase protected PKCS12 certificates are not supported"},
		{"garbage payload", f.storeP12(t, []byte("garbage, not PKCS#12")), certs.ErrUnreadable, "PKCS#12"},
		{"missing secret", envs[f.mode]["BARBICAN_ENDPOINT"] + "v1/secrets/00000000-0000-0000-0000-000000000000", certs.ErrNotFound, "does not exist"},
		{"not a Barbican href", "https://barbican.example/v2/things/x", nil, "not a Barbican href"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Bundle(context.Background(), tc.ref)
			var re *certs.RefError
			if err == nil || !errors.As(err, &re) || re.Ref != tc.ref {
				t.Fatalf("want an error naming the ref, got %v", err)
			}
			if (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %q, want %v with %q", err, tc.want, tc.text)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestCertInspectBarbicanHref runs the binary's cert inspect on a href,
// authenticating with the standard OS_* variables against Keystone.
func TestCertInspectBarbicanHref(t *testing.T) {
	f := fixtures(t)[1]
	ca := tu.CA(t, "inspect CA")
	data, _ := p12For(t, ca, "inspect.example", "")
	ref := f.storeP12(t, data)
	env := envs["keystone"]
	cmd := exec.Command("go", "run", "../../cmd/terminator", "cert", "inspect", ref)
	cmd.Env = append(os.Environ(), "OS_AUTH_URL="+env["OS_AUTH_URL"], "OS_USERNAME=admin", "OS_PASSWORD="+env["OS_PASSWORD"],
		"OS_PROJECT_NAME=admin", "OS_DOMAIN_ID=default", "OS_REGION_NAME=RegionOne")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "inspect.example") || !strings.Contains(string(out), "sha256:") {
		t.Fatalf("cert inspect: %v\n%s", err, out)
	}
}
