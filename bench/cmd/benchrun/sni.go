package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/terminator-proxy/terminator/pki"
)

// sniScale serves N certificates, one name each, and measures start-up
// time (start to the first handshake for a random name), RSS, and CPU per
// handshake for random names at a fixed rate, in -reps paired windows. nginx has no crt-list
// equivalent (a server block per name), so haproxy and terminator compare.
func (b *bench) sniScale() error {
	n := b.opts.sniCerts
	dir := filepath.Join(b.opts.work, "sni")
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names := make([]string, n)
	var crtList, refs strings.Builder
	for i := range n {
		names[i] = fmt.Sprintf("host%05d.sni.test", i)
		c, k, err := b.ca.Issue(pki.Request{CommonName: names[i], DNSNames: []string{names[i]}, Usage: pki.ServerAuth})
		if err != nil {
			return err
		}
		kp, _ := pki.KeyPEM(k)
		file := filepath.Join(dir, names[i]+".pem")
		if err := os.WriteFile(file, append(pki.CertPEM(c), kp...), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(&crtList, file)
		if i > 0 {
			fmt.Fprintf(&refs, "      - file://%s\n", file)
		}
	}
	namesFile := filepath.Join(dir, "names.txt")
	_ = os.WriteFile(namesFile, []byte(strings.Join(names, "\n")), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "crt-list"), []byte(crtList.String()), 0o644)
	// The main template, rendered as the other scenarios render it (no
	// gRPC route), on ports of its own, with the SNI frontend added.
	var sb strings.Builder
	data := map[string]any{"Work": b.opts.work, "Backend": backendAddr, "GRPC": "", "P": map[string][]int{"haproxy": {18441, 18451}}}
	if err := template.Must(template.New("haproxy.cfg").Parse(haproxyCfg)).Execute(&sb, data); err != nil {
		return err
	}
	hcfg := strings.Replace(sb.String(), "frontend fe\n", "frontend fe_sni\n    bind 127.0.0.1:8461 ssl crt-list "+filepath.Join(dir, "crt-list")+" alpn http/1.1\n    option forwardfor\n    default_backend be\nfrontend fe\n", 1)
	tcfg := fmt.Sprintf(`log: {level: warn, access_log: false}
listeners:
  - name: sni
    protocol: TERMINATED_HTTPS
    bind: 127.0.0.1:8463
    default_tls_container_ref: file://%s
    sni_container_refs:
%s    tls_versions: [TLSv1.3]
    insert_headers: {X-Forwarded-For: "true"}
    default_pool: be
pools:
  - name: be
    members: [{address: 127.0.0.1, protocol_port: 9001}]
`, filepath.Join(dir, names[0]+".pem"), refs.String())
	_ = os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(hcfg), 0o644)
	_ = os.WriteFile(filepath.Join(dir, "terminator.yaml"), []byte(tcfg), 0o644)

	b.extra = append(b.extra, fmt.Sprintf("\n### %d SNI certificates\n\n| frontend | start-up to first handshake | RSS | CPU-ms per 1k handshakes, random name, 250/s: median [min..max] | ÷ haproxy, paired | failed |\n|---|---|---|---|---|---|", n))
	// Both frontends start one after the other (the other one idle on the
	// core: haproxy does nothing between connections), then their
	// handshake windows alternate, rotating which goes first, so that each
	// repetition's ratio compares windows seconds apart rather than runs
	// minutes apart on this noisy machine.
	type front struct {
		name, addr string
		p          *proc
		startup    time.Duration
		rss        int64
		cpu        []float64
		failed     string
	}
	var fronts []*front
	defer func() {
		for _, f := range fronts {
			f.p.stop()
		}
	}()
	for _, name := range []string{"haproxy", "terminator"} {
		f := &front{name: name, failed: "0"}
		var argv, env []string
		port := 8461
		switch name {
		case "haproxy":
			argv = []string{"haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg")}
		case "terminator":
			argv = []string{b.bin["terminator"], "serve", "--config", filepath.Join(dir, "terminator.yaml")}
			env = b.terminatorEnv()
			port = 8463
		}
		f.addr = fmt.Sprintf("127.0.0.1:%d", port)
		t0 := time.Now()
		p, err := b.start(name+"-sni", proxyCPU, env, argv...)
		if err != nil {
			return err
		}
		f.p = p
		fronts = append(fronts, f)
		if err := waitTLS(f.addr, names[rand.IntN(n)], 5*time.Minute); err != nil {
			return err
		}
		f.startup = time.Since(t0)
		time.Sleep(time.Second)
		f.rss = p.rssKiB()
	}
	var ratios []float64
	for rep := range b.opts.reps {
		per := map[string]float64{}
		for i := range fronts {
			f := fronts[(i+rep)%len(fronts)]
			cpu0 := f.p.cpu()
			out, _ := exec.Command("taskset", "-c", "0", b.bin["loadgen"], "hs", "-addr", f.addr, "-names", namesFile, "-rate", "250", "-c", "16", "-d", b.opts.dur.String(), "-n", "1000000").CombinedOutput()
			cpu1 := f.p.cpu()
			ok, _, _, lerr := parseLoadgen(string(out))
			if lerr != nil {
				f.failed = lerr.Error()
			}
			if ok > 0 {
				per[f.name] = (cpu1 - cpu0) * 1e6 / float64(ok)
				f.cpu = append(f.cpu, per[f.name])
			}
			b.logf("sni %-10s %d certs, rep %d: %.0f CPU-ms/1k handshakes", f.name, n, rep+1, per[f.name])
		}
		if per["haproxy"] > 0 && per["terminator"] > 0 {
			ratios = append(ratios, per["terminator"]/per["haproxy"])
		}
	}
	for _, f := range fronts {
		vs := "1"
		if f.name == "terminator" {
			vs = ratio(ratios)
		}
		cpu := "–"
		if len(f.cpu) > 0 {
			cpu = fmt.Sprintf("%.0f [%.0f..%.0f]", median(f.cpu), slices.Min(f.cpu), slices.Max(f.cpu))
		}
		b.logf("sni %-10s %d certs: start-up %v, RSS %.1f MiB, %s CPU-ms/1k handshakes, %s", f.name, n, f.startup.Round(time.Millisecond), float64(f.rss)/1024, cpu, f.failed)
		b.extra = append(b.extra, fmt.Sprintf("| %s | %.2f s | %.1f MiB | %s | %s | %s |", f.name, f.startup.Seconds(), float64(f.rss)/1024, cpu, vs, f.failed))
	}
	return nil
}
