package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "terminator-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "terminator")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building terminator: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func terminator(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	ca := tu.CA(t, "ca")
	tu.Bundle(t, dir, "good.pem", ca, "good.example")
	old, oldKey, _ := ca.Issue(pki.Request{CommonName: "old.example", DNSNames: []string{"old.example"}, NotBefore: time.Now().Add(-72 * time.Hour), Validity: time.Hour})
	tu.WriteFile(t, dir, "old.pem", append(pki.CertPEM(old), tu.KeyPEM(t, oldKey)...))
	tu.WriteFile(t, dir, "junk.pem", []byte("junk"))

	write := func(name, body string) string {
		return tu.WriteFile(t, dir, name, []byte(strings.ReplaceAll(body, "{{dir}}", dir)))
	}
	good := write("good.yaml", `
listeners:
  - {name: web, protocol: TERMINATED_HTTPS, bind: "127.0.0.1:8443", default_tls_container_ref: "file://{{dir}}/good.pem", sni_container_refs: ["file://{{dir}}/old.pem"]}
`)
	out, errOut, code := terminator(t, "check", "--config", good)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("check of a servable config: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "warning: listeners[0].sni_container_refs[0]: certificate ref file://"+dir+"/old.pem: certificate expired") {
		t.Fatalf("no warning for the expired certificate:\n%s", errOut)
	}

	bad := write("bad.yaml", `
listeners:
  - {name: web, protocol: TERMINATED_HTTPS, bind: "127.0.0.1:8443", default_tls_container_ref: "file://{{dir}}/good.pem", sni_container_refs: ["file://{{dir}}/good.pem", "file://{{dir}}/junk.pem"]}
`)
	_, errOut, code = terminator(t, "check", "--config", bad)
	if code != 1 || !strings.Contains(errOut, "listeners[0].sni_container_refs[1]: certificate ref file://"+dir+"/junk.pem: unreadable data") {
		t.Fatalf("check of a bad certificate: exit %d\n%s", code, errOut)
	}

	invalid := write("invalid.yaml", "listeners: [{name: a, protocol: HTTP, bind: ':80', colour: red, default_pool: nope}]\n")
	_, errOut, code = terminator(t, "check", "--config", invalid)
	if code != 1 || !strings.Contains(errOut, "colour") {
		t.Fatalf("unknown field: exit %d\n%s", code, errOut)
	}
	invalid2 := write("invalid2.yaml", "listeners: [{name: a, protocol: HTTP, bind: ':80', default_pool: nope}]\n")
	_, errOut, code = terminator(t, "check", "--config", invalid2)
	if code != 1 || !strings.Contains(errOut, `listeners[0].default_pool: no pool has the name or id "nope"`) {
		t.Fatalf("bad pool: exit %d\n%s", code, errOut)
	}
}

func TestCertInspect(t *testing.T) {
	dir := t.TempDir()
	ca := tu.CA(t, "Inspect CA")
	ref, c := tu.Bundle(t, dir, "site.pem", ca, "site.example", "*.site.example")
	out, errOut, code := terminator(t, "cert", "inspect", ref)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"site.example, *.site.example", "ECDSA P-256", "CN=Inspect CA", c.NotAfter.UTC().Format(time.RFC3339)} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	_, errOut, code = terminator(t, "cert", "inspect", "file://"+dir+"/nothing.pem")
	if code != 1 || !strings.Contains(errOut, "nothing.pem") {
		t.Fatalf("missing file: exit %d %s", code, errOut)
	}
}

// TestServeReloadAndDrain runs the real binary: SIGHUP applies an edited
// config, a bad edit is refused while the old one keeps serving, and
// SIGTERM lets a slow request finish before the process exits 0.
func TestServeReloadAndDrain(t *testing.T) {
	dir := t.TempDir()
	ca := tu.CA(t, "ca")
	tu.Bundle(t, dir, "site.pem", ca, "site.example")
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		fmt.Fprintf(w, "path=%s xfp=%s", r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer backend.Close()
	_, port := tu.HostPort(t, backend.URL)
	bind, adminBind := freePort(t), freePort(t)
	cfgText := func(headers string) string {
		return fmt.Sprintf(`
admin: {bind: %q}
listeners:
  - name: web
    protocol: TERMINATED_HTTPS
    bind: %q
    default_tls_container_ref: file://%s/site.pem
    insert_headers: {%s}
    default_pool: app
pools:
  - {name: app, members: [{address: 127.0.0.1, protocol_port: %s}]}
`, adminBind, bind, dir, headers, port)
	}
	cfgPath := tu.WriteFile(t, dir, "t.yaml", []byte(cfgText("")))
	cmd := exec.Command(binary, "serve", "--config", cfgPath, "--drain-timeout", "10s")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
	}()
	defer cmd.Process.Kill()
	waitLog := func(substr string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case l, ok := <-logs:
				if !ok {
					t.Fatalf("process exited before logging %q", substr)
				}
				if strings.Contains(l, substr) {
					return
				}
			case <-deadline:
				t.Fatalf("no log line with %q", substr)
			}
		}
	}
	waitLog("snapshot applied")
	client := tu.Client(tu.Pool(ca), "site.example", false)
	get := func(path string) string {
		resp, err := client.Get("https://" + bind + path)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get("/a"); got != "path=/a xfp=" {
		t.Fatalf("before reload: %q", got)
	}
	tu.WriteAtomic(t, cfgPath, []byte(cfgText(`X-Forwarded-Proto: "true"`)))
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	waitLog("generation=2")
	if got := get("/b"); got != "path=/b xfp=https" {
		t.Fatalf("after reload: %q", got)
	}
	tu.WriteAtomic(t, cfgPath, []byte("listeners: [{name: broken"))
	must(t, cmd.Process.Signal(syscall.SIGHUP))
	waitLog("reload failed")
	if got := get("/c"); got != "path=/c xfp=https" {
		t.Fatalf("after a refused reload: %q", got)
	}
	resp, err := http.Get("http://" + adminBind + "/metrics")
	must(t, err)
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metricsText), "terminator_reload_failing 1") {
		t.Fatal("metrics do not show the failing reload")
	}

	readyz := func() int {
		resp, err := http.Get("http://" + adminBind + "/readyz")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := readyz(); code != 200 {
		t.Fatalf("/readyz = %d while serving", code)
	}
	slow := make(chan string, 1)
	go func() { slow <- get("/slow") }()
	time.Sleep(200 * time.Millisecond)
	must(t, cmd.Process.Signal(syscall.SIGTERM))
	waitLog("draining")
	if code := readyz(); code != 503 {
		t.Errorf("/readyz = %d while draining, want 503", code)
	}
	if _, err := tls.Dial("tcp", bind, &tls.Config{RootCAs: tu.Pool(ca), ServerName: "site.example"}); err == nil {
		t.Error("new connection accepted while draining")
	}
	close(release)
	if got := <-slow; got != "path=/slow xfp=https" {
		t.Fatalf("in-flight request during drain: %q", got)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("exit after drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit after draining")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
