package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"

	"github.com/terminator-proxy/terminator/pki"
)

// Ports: haproxy 8441/8451, nginx 8442/8452, terminator 8443/8453 (ECDSA/RSA).
var ports = map[string][2]int{"haproxy": {8441, 8451}, "nginx": {8442, 8452}, "terminator": {8443, 8453}, "terminator-base": {8444, 8454}}

const (
	backendAddr = "127.0.0.1:9001"
	statsAddr   = "127.0.0.1:9002"
	grpcAddr    = "127.0.0.1:9003" // the backend's gRPC (h2c) test service
	loadCPU     = 0
	proxyCPU    = 1
)

type bench struct {
	opts    options
	procs   []*proc
	fronts  map[string]*proc
	backend *proc
	bin     map[string]string // built binaries
	rows    []row
	mem     []memRow
	extra   []string // Markdown lines from the SNI and reload phases
	ca      *pki.CA
}

// setup builds the binaries, writes certificates and configs.
func (b *bench) setup() error {
	if err := os.MkdirAll(b.opts.work, 0o755); err != nil {
		return err
	}
	_ = os.Chmod(b.opts.work, 0o755) // nginx workers run as an unprivileged user
	b.bin = map[string]string{}
	for name, pkg := range map[string]string{"terminator": "./cmd/terminator", "backend": "./bench/cmd/backend", "loadgen": "./bench/cmd/loadgen"} {
		out := filepath.Join(b.opts.work, name)
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = b.opts.repo
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", name, err, msg)
		}
		b.bin[name] = out
	}
	if b.opts.base != "" {
		if err := b.buildBase(); err != nil {
			return err
		}
	}
	if b.opts.boring {
		out := filepath.Join(b.opts.work, "terminator-base")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/terminator")
		cmd.Dir = b.opts.repo
		cmd.Env = append(os.Environ(), "GOEXPERIMENT=boringcrypto", "CGO_ENABLED=1")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building terminator with BoringCrypto: %v\n%s", err, msg)
		}
		b.bin["terminator-base"] = out
	}
	ca, err := pki.NewCA("bench CA", pki.ECDSAP256, 0)
	if err != nil {
		return err
	}
	for name, kt := range map[string]pki.KeyType{"ec": pki.ECDSAP256, "rsa": pki.RSA2048} {
		c, k, err := ca.Issue(pki.Request{CommonName: "localhost", DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: pki.ServerAuth, KeyType: kt})
		if err != nil {
			return err
		}
		kp, err := pki.KeyPEM(k)
		if err != nil {
			return err
		}
		for file, data := range map[string][]byte{name + ".crt": pki.CertPEM(c), name + ".key": kp, name + ".pem": append(pki.CertPEM(c), kp...)} {
			if err := os.WriteFile(filepath.Join(b.opts.work, file), data, 0o644); err != nil {
				return err
			}
		}
	}
	b.ca = ca
	// The gRPC route is configured only when the grpc scenario runs, so the
	// other scenarios measure the configurations they always did (and a
	// -base build that predates h2c pools can run them).
	data := map[string]any{"Work": b.opts.work, "Backend": backendAddr, "GRPC": "", "P": ports, "Kinds": []string{"ec", "rsa"}}
	if b.opts.want("grpc") {
		data["GRPC"] = grpcAddr
	}
	if err := writeGRPCRequest(filepath.Join(b.opts.work, "grpc-req.bin")); err != nil {
		return err
	}
	for file, tmpl := range map[string]string{"haproxy.cfg": haproxyCfg, "nginx.conf": nginxConf, "terminator.yaml": terminatorCfg} {
		var sb strings.Builder
		if err := template.Must(template.New(file).Parse(tmpl)).Execute(&sb, data); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(b.opts.work, file), []byte(sb.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startFrontend starts one frontend on the proxy core and waits for it.
func (b *bench) startFrontend(name string) (*proc, error) {
	w := b.opts.work
	var p *proc
	var err error
	switch name {
	case "haproxy":
		p, err = b.start(name, proxyCPU, nil, "haproxy", "-db", "-f", filepath.Join(w, "haproxy.cfg"))
	case "nginx":
		p, err = b.start(name, proxyCPU, nil, "nginx", "-p", w, "-c", filepath.Join(w, "nginx.conf"), "-e", filepath.Join(w, "nginx-error.log"))
	case "terminator":
		p, err = b.start(name, proxyCPU, b.terminatorEnv(), b.bin["terminator"], "serve", "--config", filepath.Join(w, "terminator.yaml"))
	case "terminator-base":
		cfg := strings.NewReplacer("8443", "8444", "8453", "8454", "127.0.0.1:9110", "127.0.0.1:9111").Replace(b.terminatorConfig())
		path := filepath.Join(w, "terminator-base.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		p, err = b.start(name, proxyCPU, append(b.terminatorEnv(), b.opts.baseEnv...), b.bin["terminator-base"], "serve", "--config", path)
	default:
		return nil, fmt.Errorf("unknown frontend %q", name)
	}
	if err != nil {
		return nil, err
	}
	for _, port := range ports[name] {
		if err := waitTLS(fmt.Sprintf("127.0.0.1:%d", port), "localhost", 10*time.Second); err != nil {
			return nil, fmt.Errorf("%s: %w (see %s/%s.log)", name, err, w, name)
		}
	}
	return p, nil
}

func (b *bench) restartFrontend(name string) error {
	if p := b.fronts[name]; p != nil {
		p.stop()
	}
	p, err := b.startFrontend(name)
	if err != nil {
		return err
	}
	b.fronts[name] = p
	return nil
}

const haproxyCfg = `global
    nbthread 1
    maxconn 8000
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-bind-curves X25519
    tune.ssl.default-dh-param 2048
defaults
    mode http
    timeout connect 5s
    timeout client 50s
    timeout server 50s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:{{index .P.haproxy 0}} ssl crt {{.Work}}/ec.pem alpn h2,http/1.1
    bind 127.0.0.1:{{index .P.haproxy 1}} ssl crt {{.Work}}/rsa.pem alpn h2,http/1.1
    option forwardfor
{{if .GRPC}}    acl grpc path_beg /grpc.testing.
    use_backend be_grpc if grpc
{{end}}    default_backend be
backend be
    server s1 {{.Backend}}
{{if .GRPC}}backend be_grpc
    server g1 {{.GRPC}} proto h2
{{end}}`

const nginxConf = `worker_processes 1;
daemon off;
master_process on;
pid {{.Work}}/nginx.pid;
error_log {{.Work}}/nginx-error.log warn;
events { worker_connections 8000; }
http {
    access_log off;
    keepalive_requests 1000000;
    http2_max_requests 1000000;
    client_max_body_size 4m;
    client_body_temp_path {{.Work}}/nginx-body;
    proxy_temp_path {{.Work}}/nginx-proxy;
    ssl_protocols TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    ssl_ecdh_curve X25519;
    ssl_session_cache shared:SSL:20m;
    ssl_session_tickets on;
    upstream be { server {{.Backend}}; keepalive 1024; }
{{if .GRPC}}    upstream grpcbe { server {{.GRPC}}; keepalive 1024; }
{{end}}
{{range $i, $kind := .Kinds}}    server {
        listen 127.0.0.1:{{index $.P.nginx $i}} ssl http2;
        ssl_certificate {{$.Work}}/{{$kind}}.crt;
        ssl_certificate_key {{$.Work}}/{{$kind}}.key;
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_request_buffering off;
            proxy_buffering off;
        }
{{if $.GRPC}}        location /grpc.testing. {
            grpc_pass grpc://grpcbe;
        }
{{end}}    }
{{end}}}
`

const terminatorCfg = `log: {level: warn, access_log: false}
admin: {bind: 127.0.0.1:9110, pprof: true}
listeners:
  - name: ec
    protocol: TERMINATED_HTTPS
    bind: 127.0.0.1:{{index .P.terminator 0}}
    default_tls_container_ref: file://{{.Work}}/ec.pem
    tls_versions: [TLSv1.3]
    alpn_protocols: [h2, http/1.1]
    insert_headers: {X-Forwarded-For: "true"}
    default_pool: be
{{if .GRPC}}    l7policies: [{action: REDIRECT_TO_POOL, redirect_pool: grpc, rules: [{type: PATH, compare_type: STARTS_WITH, value: /grpc.testing.}]}]
{{end}}  - name: rsa
    protocol: TERMINATED_HTTPS
    bind: 127.0.0.1:{{index .P.terminator 1}}
    default_tls_container_ref: file://{{.Work}}/rsa.pem
    tls_versions: [TLSv1.3]
    alpn_protocols: [h2, http/1.1]
    insert_headers: {X-Forwarded-For: "true"}
    default_pool: be
{{if .GRPC}}    l7policies: [{action: REDIRECT_TO_POOL, redirect_pool: grpc, rules: [{type: PATH, compare_type: STARTS_WITH, value: /grpc.testing.}]}]
{{end}}pools:
  - name: be
    members: [{address: 127.0.0.1, protocol_port: 9001}]
{{if .GRPC}}  - name: grpc
    h2c: true
    members: [{address: 127.0.0.1, protocol_port: 9003}]
{{end}}`

// buildBase builds terminator from the -base git ref in a temporary
// worktree, for A/B measurements in one run.
func (b *bench) buildBase() error {
	tree := filepath.Join(b.opts.work, "base-src")
	_ = exec.Command("git", "-C", b.opts.repo, "worktree", "remove", "--force", tree).Run()
	if out, err := exec.Command("git", "-C", b.opts.repo, "worktree", "add", "--detach", tree, b.opts.base).CombinedOutput(); err != nil {
		return fmt.Errorf("checking out %s: %v\n%s", b.opts.base, err, out)
	}
	defer exec.Command("git", "-C", b.opts.repo, "worktree", "remove", "--force", tree).Run()
	out := filepath.Join(b.opts.work, "terminator-base")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/terminator")
	cmd.Dir = tree
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %v\n%s", b.opts.base, err, msg)
	}
	b.bin["terminator-base"] = out
	return nil
}

func (b *bench) terminatorConfig() string {
	data, _ := os.ReadFile(filepath.Join(b.opts.work, "terminator.yaml"))
	return string(data)
}

// writeGRPCRequest writes the body of one gRPC UnaryCall (a 5-byte frame
// header and a SimpleRequest with 100 bytes of payload), which h2load sends
// as is.
func writeGRPCRequest(path string) error {
	msg, err := proto.Marshal(&testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte(strings.Repeat("p", 100))}})
	if err != nil {
		return err
	}
	frame := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	return os.WriteFile(path, append(frame, msg...), 0o644)
}

// unitFile is the packaged service whose environment terminator runs with.
const unitFile = "packaging/systemd/terminator.service"

// terminatorEnv is the environment terminator is measured with: one thread
// (as haproxy and nginx) and the Environment= settings of the packaged
// systemd unit, so that the bench measures terminator as it is shipped.
// Later entries win, so -base-env can override them.
func (b *bench) terminatorEnv() []string {
	env := []string{"GOMAXPROCS=1"}
	data, err := os.ReadFile(filepath.Join(b.opts.repo, unitFile))
	if err != nil {
		return env
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Environment="); ok {
			env = append(env, strings.Fields(strings.ReplaceAll(v, `"`, ""))...)
		}
	}
	return env
}
