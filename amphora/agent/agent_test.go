package agent_test

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/amphora/agent"
	"github.com/terminator-proxy/terminator/amphora/agentconf"
	"github.com/terminator-proxy/terminator/amphora/netplug"
	"github.com/terminator-proxy/terminator/backends/file"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/dataplane"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/metrics"
	"github.com/terminator-proxy/terminator/pki"
)

const ampID = "3f2a1b4c-5d6e-4f70-8a9b-0c1d2e3f4a5b"

// plane is the real data plane with the real file manager.
type plane struct {
	p   *dataplane.Plane
	reg *certs.Registry
}

func (p plane) Check(ctx context.Context, cfg *config.Config) error {
	_, err := dataplane.Build(ctx, cfg, p.reg, metrics.New(), time.Now())
	return err
}
func (p plane) Apply(ctx context.Context, cfg *config.Config) error { return p.p.Apply(ctx, cfg) }

type amphora struct {
	dir, addr          string
	serverCA, clientCA *pki.CA
	controllerPEM      string // the controller's client cert+key PEM
	srv                *agent.Server
	plane              plane
	net                *netplug.Plugger // nil: the plug calls change nothing
}

// newAmphora runs terminator's agent as an amphora would be set up by the
// controller: a server certificate for the amphora id signed by the
// server CA, client certificates checked against the client CA.
func newAmphora(t *testing.T) *amphora {
	t.Helper()
	a := &amphora{dir: t.TempDir(), serverCA: tu.CA(t, "server CA"), clientCA: tu.CA(t, "client CA")}
	sc, sk, _ := a.serverCA.Issue(pki.Request{CommonName: ampID, DNSNames: []string{ampID}, Usage: pki.ServerAuth})
	tu.WriteFile(t, a.dir, "server.pem", append(pki.CertPEM(sc), tu.KeyPEM(t, sk)...))
	tu.WriteFile(t, a.dir, "client_ca.pem", pki.CertPEM(a.clientCA.Cert))
	cc, ck, _ := a.clientCA.Issue(pki.Request{CommonName: "controller", Usage: pki.ClientAuth})
	a.controllerPEM = tu.WriteFile(t, a.dir, "client.pem", append(pki.CertPEM(cc), tu.KeyPEM(t, ck)...))
	tu.WriteFile(t, a.dir, "server_ca.pem", pki.CertPEM(a.serverCA.Cert))
	a.start(t)
	return a
}

// restart runs a new agent and data plane over a's directories.
func restart(t *testing.T, a *amphora) *amphora {
	t.Helper()
	b := *a
	b.start(t)
	return &b
}

func (a *amphora) start(t *testing.T) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	fm, err := file.New(file.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	a.plane.reg = certs.NewRegistry()
	a.plane.reg.Register("file", fm)
	po := dataplane.Options{Certs: a.plane.reg, Logger: log, Metrics: metrics.New()}
	if a.net != nil {
		po.Listen, po.ListenPacket, po.Dial = a.net.Listen, a.net.ListenPacket, a.net.Dial
	}
	a.plane.p = dataplane.New(po)
	t.Cleanup(func() { _ = a.plane.p.Shutdown(context.Background()) })
	ac := &agentconf.Config{AmphoraID: ampID, ServerCert: filepath.Join(a.dir, "server.pem"), ServerCA: filepath.Join(a.dir, "client_ca.pem"), RequestReadTimeout: time.Minute,
		TLSVersion: tls.VersionTLS12, BasePath: filepath.Join(a.dir, "octavia"), BaseCertDir: filepath.Join(a.dir, "octavia", "certs")}
	a.srv, err = agent.New(agent.Options{Config: ac, Plane: a.plane, Net: a.net, Version: "test", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	done := make(chan struct{})
	srv := a.srv
	go func() { _ = srv.Serve(ln); close(done) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()); <-done })
}

// controller is Octavia's AmphoraAPIClient1_0 in a python3 process.
type controller struct{ *tu.Controller }

func (a *amphora) controller(t *testing.T) *controller {
	t.Helper()
	return &controller{tu.NewController(t, a.addr, ampID, a.controllerPEM, filepath.Join(a.dir, "server_ca.pem"))}
}

func (c *controller) call(t *testing.T, method string, args ...any) (any, error) {
	return c.Call(t, method, args...)
}

func (c *controller) must(t *testing.T, method string, args ...any) any {
	t.Helper()
	return c.Must(t, method, args...)
}

func render(t *testing.T, spec map[string]any) string {
	t.Helper()
	js, _ := json.Marshal(spec)
	out, err := exec.Command("../../scripts/octavia-peer", "render", string(js)).Output()
	if err != nil {
		t.Fatalf("Octavia's templater: %v", err)
	}
	return string(out)
}

// TestOctaviaControllerDrivesTheAgent: Octavia's own controller client
// discovers the API version, reads info and details, uploads certificates
// and a rendered haproxy.cfg, reloads, lists listeners, and deletes the
// load balancer; traffic flows through the translated listener in between.
// Bad uploads are refused with the controller's exceptions, and serving
// listeners are untouched.
func TestOctaviaControllerDrivesTheAgent(t *testing.T) {
	a := newAmphora(t)
	var members []string
	for range 2 {
		backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "member answered") }))
		defer backend.Close()
		members = append(members, strings.TrimPrefix(backend.URL, "http://"))
	}
	c := a.controller(t)

	if v := c.must(t, "get_api_version"); v.(map[string]any)["api_version"] != "1.0" {
		t.Fatalf("version discovery: %v", v)
	}
	info := c.must(t, "get_info").(map[string]any)
	if info["haproxy_version"] != agent.HAProxyCompat || info["api_version"] != "1.0" || info["terminator_version"] != "test" {
		t.Fatalf("info: %v", info)
	}
	details := c.must(t, "get_details").(map[string]any)
	if details["cpu_count"].(float64) < 1 || details["memory"].(map[string]any)["total"].(float64) <= 0 || len(details["load"].([]any)) != 3 {
		t.Fatalf("details: %v", details)
	}

	vip := "127.0.0.23"
	cfg := render(t, map[string]any{"vip": vip, "members": members,
		"listeners": []map[string]any{{"id": "web", "proto": "HTTP", "monitor": false},
			{"id": "prom", "proto": "PROMETHEUS", "port": 9100, "monitor": false, "alloc_default_pool": false}}})
	const lb = "sample_loadbalancer_id_1"
	if _, err := c.call(t, "upload_config", lb, cfg); err != nil {
		t.Fatalf("upload_config: %v", err)
	}
	c.must(t, "reload_listener", lb)
	get := func() (string, error) {
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + vip + ":80/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	if body, err := get(); err != nil || body != "member answered" {
		t.Fatalf("through the translated listener: %q %v", body, err)
	}
	ls := c.must(t, "get_all_listeners").([]any)
	if len(ls) != 2 || ls[0].(map[string]any)["uuid"] != "web" || ls[0].(map[string]any)["type"] != "HTTP" {
		t.Fatalf("listeners: %v", ls)
	}
	// The PROMETHEUS listener: terminator's metrics and haproxy's names.
	resp, err := http.Get("http://" + vip + ":9100/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`haproxy_frontend_http_requests_total{proxy="web"} 1`, `haproxy_frontend_http_responses_total{code="2xx",proxy="web"} 1`,
		`haproxy_frontend_sessions_total{proxy="web"} 1`, `terminator_requests_total{class="2xx",listener="web"} 1`} {
		if !strings.Contains(string(exposition), want) {
			t.Errorf("the PROMETHEUS listener's answer lacks %q", want)
		}
	}

	// Certificates: upload, md5 as the controller compares it, delete.
	leaf, key := tu.Leaf(t, tu.CA(t, "tenant CA"), pki.ECDSAP256, "shop.example")
	bundle := string(append(pki.CertPEM(leaf), tu.KeyPEM(t, key)...))
	c.must(t, "upload_cert_pem", lb, "0123abcd.pem", bundle)
	if sum := c.must(t, "get_cert_md5sum", lb, "0123abcd.pem"); sum != md5sum(bundle) {
		t.Fatalf("md5sum %v", sum)
	}
	if _, err := c.call(t, "upload_cert_pem", lb, "garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"); err == nil || !strings.Contains(err.Error(), "InvalidRequest") {
		t.Fatalf("a garbage PEM: %v; want InvalidRequest", err)
	}
	c.must(t, "delete_cert_pem", lb, "0123abcd.pem")
	if _, err := c.call(t, "get_cert_md5sum", lb, "0123abcd.pem"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("md5sum of a deleted file: %v", err)
	}

	// A configuration outside the rendered subset: refused, kept as
	// .new-failed, and the listener keeps serving.
	bad := strings.Replace(cfg, "    mode http\n", "    mode http\n    lua-load /x.lua\n", 1)
	if _, err := c.call(t, "upload_config", lb, bad); err == nil || !strings.Contains(err.Error(), "InvalidRequest") {
		t.Fatalf("a bad haproxy.cfg: %v; want InvalidRequest", err)
	}
	if _, err := os.Stat(filepath.Join(a.dir, "octavia", lb, "haproxy.cfg.new-failed")); err != nil {
		t.Fatal("the refused file was not kept as haproxy.cfg.new-failed")
	}
	c.must(t, "reload_listener", lb)
	if body, err := get(); err != nil || body != "member answered" {
		t.Fatalf("after a refused configuration: %q %v", body, err)
	}

	// Agent certificate rotation: the next connection presents the new one.
	nc, nk, _ := a.serverCA.Issue(pki.Request{CommonName: ampID, DNSNames: []string{ampID}, Usage: pki.ServerAuth})
	c.must(t, "update_cert_for_rotation", string(append(pki.CertPEM(nc), tu.KeyPEM(t, nk)...)))
	c2 := a.controller(t)
	c2.must(t, "get_api_version")
	if got := a.presented(t); !got.Equal(nc) {
		t.Fatal("the rotated certificate is not presented to new connections")
	}

	c.must(t, "delete_listener", lb)
	if _, err := get(); err == nil {
		t.Fatal("the deleted load balancer still answers")
	}
	if ls := c.must(t, "get_all_listeners").([]any); len(ls) != 0 {
		t.Fatalf("listeners after delete: %v", ls)
	}
}

func md5sum(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// presented returns the certificate the agent presents now.
func (a *amphora) presented(t *testing.T) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(a.controllerPEM, a.controllerPEM)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", a.addr, &tls.Config{RootCAs: tu.Pool(a.serverCA), ServerName: ampID, Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// TestAgentRefusesWhatAnAmphoraRefuses: a client certificate from another
// CA is refused at the handshake; bad file names, unknown load balancers,
// actions and paths get the agent's status codes and JSON bodies.
func TestAgentRefusesWhatAnAmphoraRefuses(t *testing.T) {
	a := newAmphora(t)
	stranger := tu.CA(t, "stranger")
	sc, sk, _ := stranger.Issue(pki.Request{CommonName: "controller", Usage: pki.ClientAuth})
	strangerPEM := tu.WriteFile(t, a.dir, "stranger.pem", append(pki.CertPEM(sc), tu.KeyPEM(t, sk)...))
	do := func(client string, method, path, body string) (int, map[string]any, error) {
		pair, err := tls.LoadX509KeyPair(client, client)
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: tu.Pool(a.serverCA), ServerName: ampID, Certificates: []tls.Certificate{pair}, MaxVersion: tls.VersionTLS12}}}
		req, _ := http.NewRequest(method, "https://"+a.addr+path, strings.NewReader(body))
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.Header.Get("Content-Type") != "application/json" && resp.StatusCode >= 400 {
			t.Errorf("%s %s: %d without a JSON body", method, path, resp.StatusCode)
		}
		return resp.StatusCode, out, nil
	}
	if _, _, err := do(strangerPEM, "GET", "/", ""); err == nil {
		t.Fatal("a client certificate from another CA was accepted")
	}
	cases := []struct {
		method, path string
		code         int
		key, want    string
	}{
		{"PUT", "/1.0/loadbalancer/lb1/certificates/..%2F..%2Fevil.pem", 400, "message", "Filename has wrong format"},
		{"PUT", "/1.0/loadbalancer/lb1/certificates/evil.txt", 400, "message", "Filename has wrong format"},
		{"PUT", "/1.0/loadbalancer/nolb/reload", 404, "details", "No loadbalancer with UUID: nolb"},
		{"PUT", "/1.0/loadbalancer/nolb/restart", 400, "details", "Unknown action: restart"},
		{"GET", "/1.0/loadbalancer/nolb/haproxy", 404, "message", "Loadbalancer Not Found"},
		{"GET", "/1.0/nothing", 404, "error", "404 Not Found"},
		{"DELETE", "/1.0/info", 405, "error", "405 Method Not Allowed"},
		{"DELETE", "/1.0/listeners/nolb", 200, "message", "OK"},
		{"POST", "/1.0/plug/vip/203.0.113.5", 202, "details", "does not configure this part of the amphora's network"},
	}
	for _, tc := range cases {
		code, body, err := do(a.controllerPEM, tc.method, tc.path, "x")
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if code != tc.code || !strings.Contains(fmt.Sprint(body[tc.key]), tc.want) {
			t.Errorf("%s %s: %d %v; want %d with %s %q", tc.method, tc.path, code, body, tc.code, tc.key, tc.want)
		}
	}
}

// TestTLSLoadBalancerThroughTheAgent: the controller's way for a
// TERMINATED_HTTPS listener: certificate bundles named by SHA-1 and the
// listener's crt-list uploaded first, then the configuration and a
// reload. HTTPS is served with the uploaded certificate; stop stops it,
// start serves the same configuration again, and a restarted agent
// serves it before any controller call.
func TestTLSLoadBalancerThroughTheAgent(t *testing.T) {
	a := newAmphora(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls member") }))
	defer backend.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls member") }))
	defer other.Close()
	c := a.controller(t)
	c.must(t, "get_api_version")

	const lb = "sample_loadbalancer_id_1"
	certDir := filepath.Join(a.dir, "octavia", "certs")
	tenant := tu.CA(t, "tenant CA")
	leaf, key := tu.Leaf(t, tenant, pki.ECDSAP256, "shop.example")
	bundle := string(append(pki.CertPEM(leaf), tu.KeyPEM(t, key)...))
	sha := fmt.Sprintf("%x", sha1.Sum([]byte(pki.CertPEM(leaf))))
	c.must(t, "upload_cert_pem", lb, sha+".pem", bundle)
	c.must(t, "upload_cert_pem", lb, "tls.pem", filepath.Join(certDir, lb, sha+".pem")+"\n")

	vip := "127.0.0.24"
	cfg := render(t, map[string]any{"vip": vip, "base_cert_dir": certDir,
		"members": []string{strings.TrimPrefix(backend.URL, "http://"), strings.TrimPrefix(other.URL, "http://")},
		"listeners": []map[string]any{{"id": "tls", "proto": "TERMINATED_HTTPS", "tls": true, "monitor": false},
			{"id": "tcp", "proto": "TCP", "monitor": false}, {"id": "http", "proto": "HTTP", "port": 8080, "monitor": false}}})
	c.must(t, "upload_config", lb, cfg)
	c.must(t, "reload_listener", lb)
	get := func() (string, error) {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: tu.Pool(tenant), ServerName: "shop.example", MinVersion: tls.VersionTLS13}}}
		resp, err := hc.Get("https://" + vip + ":443/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), nil
	}
	if body, err := get(); err != nil || body != "tls member" {
		t.Fatalf("HTTPS through the agent: %q %v", body, err)
	}
	// All three listeners under load while the controller reloads, re-uploads
	// the same configuration and the certificate: nothing fails.
	tlsLoad := tu.StartLoad(tu.Pool(tenant), "https://"+vip+":443/", "shop.example", 3, 4)
	tcpLoad := startPlainLoad(t, vip+":80")
	httpLoad := startPlainLoad(t, vip+":8080")
	for range 8 {
		c.must(t, "upload_cert_pem", lb, sha+".pem", bundle)
		c.must(t, "upload_config", lb, cfg)
		c.must(t, "reload_listener", lb)
	}
	tlsLoad.Finish(t)
	tcpLoad(t)
	httpLoad(t)
	c.must(t, "_action", "stop", lb)
	if _, err := get(); err == nil {
		t.Fatal("a stopped load balancer still answers")
	}
	c.must(t, "start_listener", lb)
	if body, err := get(); err != nil || body != "tls member" {
		t.Fatalf("after start: %q %v", body, err)
	}

	// A restart: a new agent over the same directories serves at once.
	_ = a.srv.Shutdown(context.Background())
	_ = a.plane.p.Shutdown(context.Background())
	if _, err := get(); err == nil {
		t.Fatal("still served after shutdown")
	}
	b := restart(t, a)
	if err := b.srv.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if body, err := get(); err != nil || body != "tls member" {
		t.Fatalf("after a restart, before any call: %q %v", body, err)
	}
}

// startPlainLoad sends HTTP requests, each on a new connection, through a
// TCP or HTTP listener until the returned function is called; it fails the
// test if any failed.
func startPlainLoad(t *testing.T, addr string) func(*testing.T) {
	stop := make(chan struct{})
	done := make(chan [2]int)
	go func() {
		ok, failed := 0, 0
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			select {
			case <-stop:
				done <- [2]int{ok, failed}
				return
			default:
			}
			resp, err := hc.Get("http://" + addr + "/")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "tls member" {
					err = fmt.Errorf("body %q", b)
				}
			}
			if err != nil {
				failed++
				continue
			}
			ok++
		}
	}()
	return func(t *testing.T) {
		t.Helper()
		close(stop)
		r := <-done
		t.Logf("listener %s: %d connections succeeded, %d failed", addr, r[0], r[1])
		if r[1] != 0 || r[0] == 0 {
			t.Fatalf("listener %s under reloads: %d ok, %d failed", addr, r[0], r[1])
		}
	}
}

// renderLVS returns the keepalived configuration Octavia's
// LvsJinjaTemplater renders for spec (scripts/octavia-peer render-lvs).
func renderLVS(t *testing.T, spec string) string {
	t.Helper()
	out, err := exec.Command("../../scripts/octavia-peer", "render-lvs", spec).Output()
	if err != nil {
		t.Fatalf("rendering with Octavia's LvsJinjaTemplater (make deps installs python3-octavia): %v", err)
	}
	return string(out)
}

// TestSCTPListenersAreRefusedByName: the keepalived configuration Octavia
// renders for an SCTP listener is refused with a 400 naming the protocol,
// so the controller marks the listener ERROR instead of believing it
// serves.
func TestSCTPListenersAreRefusedByName(t *testing.T) {
	a := newAmphora(t)
	c := a.controller(t)
	c.must(t, "get_api_version")
	sctp := renderLVS(t, "SCTP")
	if _, err := c.call(t, "upload_udp_config", "sample_listener_id_1", sctp); err == nil || !strings.HasPrefix(err.Error(), "InvalidRequest") {
		t.Errorf("Octavia's client got %v, want InvalidRequest", err)
	}
	code, body := a.do(t, "PUT", "/1.0/listeners/"+ampID+"/sample_listener_id_1/udp_listener", sctp)
	if code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["details"]), "SCTP listeners are not supported by terminator") {
		t.Errorf("%d %v, want 400 naming SCTP", code, body)
	}
	if code, body := a.do(t, "GET", "/1.0/listeners/sample_listener_id_1/udp_listener", ""); code != http.StatusNotFound {
		t.Errorf("GET udp_listener after a refusal: %d %v", code, body)
	}
}

// TestUDPListenerThroughTheAgent: Octavia's client uploads the keepalived
// configuration its LvsJinjaTemplater renders for a UDP listener and
// reloads it, as the controller's amphora driver does; terminator serves
// it: DNS-like queries to the VIP reach both members, a killed member's
// traffic moves to the other, stop and start work by listener id, the
// listener is listed as Octavia's agent lists it, and delete frees it.
func TestUDPListenerThroughTheAgent(t *testing.T) {
	a := newAmphora(t)
	c := a.controller(t)
	c.must(t, "get_api_version")
	m1, m2 := tu.UDPEcho(t, "m1"), tu.UDPEcho(t, "m2")
	vip := "127.0.0.26"
	port := 5300 + os.Getpid()%1000
	spec, _ := json.Marshal(map[string]any{
		"listener": map[string]any{"proto": "UDP", "monitor_proto": "UDP-CONNECT", "persistence": false},
		"port":     port, "vip": vip, "members": []string{m1.LocalAddr().String(), m2.LocalAddr().String()},
	})
	cfg := renderLVS(t, string(spec))
	const id = "sample_listener_id_1"
	c.must(t, "upload_udp_config", id, cfg)
	if code, body := a.do(t, "GET", "/1.0/listeners/"+id+"/udp_listener", ""); code != http.StatusOK {
		t.Fatalf("GET udp_listener: %d %v", code, body)
	}
	listed := func() string { // through Octavia's client, as the controller lists them
		all, _ := c.must(t, "get_all_listeners").([]any)
		for _, l := range all {
			if m, _ := l.(map[string]any); m["uuid"] == id {
				return fmt.Sprintf("%v %v", m["type"], m["status"])
			}
		}
		return "absent"
	}
	if got := listed(); got != "UDP OFFLINE" {
		t.Fatalf("uploaded, not started: %s", got)
	}
	c.must(t, "reload_listener", id) // the driver's call after each upload
	if got := listed(); got != "UDP ACTIVE" {
		t.Fatalf("after reload: %s", got)
	}
	addr := net.JoinHostPort(vip, strconv.Itoa(port))
	client := func() net.Conn {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	seen := map[string]int{}
	for i := range 6 {
		seen[tu.UDPAsk(t, client(), fmt.Sprintf("q%d", i), 5)]++
	}
	if seen["m1"] != 3 || seen["m2"] != 3 {
		t.Fatalf("6 flows through the agent's listener spread %v", seen)
	}
	m1.Close() // killed: its flows and new ones move to m2
	for i := range 6 {
		if got := tu.UDPAsk(t, client(), fmt.Sprintf("after%d", i), 5); got != "m2" {
			t.Fatalf("after m1 died a query was answered by %q", got)
		}
	}
	c.must(t, "_action", "stop", id)
	if got := tu.UDPAsk(t, client(), "stopped", 1); got != "" {
		t.Fatalf("a stopped UDP listener answered (%s)", got)
	}
	if got := listed(); got != "UDP OFFLINE" {
		t.Fatalf("after stop: %s", got)
	}
	c.must(t, "_action", "start", id)
	if got := tu.UDPAsk(t, client(), "started", 5); got != "m2" {
		t.Fatalf("after start: %q", got)
	}
	// A restarted agent serves the started listener before any call.
	_ = a.srv.Shutdown(context.Background())
	_ = a.plane.p.Shutdown(context.Background())
	b := restart(t, a)
	if err := b.srv.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tu.UDPAsk(t, client(), "restored", 5); got != "m2" {
		t.Fatalf("after an agent restart: %q", got)
	}
	bc := b.controller(t)
	bc.must(t, "get_api_version") // the client's paths carry the version it learns
	bc.must(t, "delete_listener", id)
	if code, _ := b.do(t, "GET", "/1.0/listeners/"+id+"/udp_listener", ""); code != http.StatusNotFound {
		t.Fatalf("deleted, GET udp_listener: %d", code)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("the deleted listener's address is still bound: %v", err)
	}
	pc.Close()
}
