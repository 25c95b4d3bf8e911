package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/terminator-proxy/terminator/pki"
)

// reloadUnderLoad sends keep-alive requests at a fixed rate (1,000/s: the
// generator shares core 0 with the backend) to terminator,
// once undisturbed and once while its certificate file is replaced every
// second, and compares failures and p99.
func (b *bench) reloadUnderLoad() error {
	if b.fronts["terminator"] == nil {
		return nil
	}
	run := func(reload bool) (string, int) {
		stop := make(chan struct{})
		done := make(chan int)
		go func() {
			n := 0
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					done <- n
					return
				case <-t.C:
					if reload && b.rewriteCert() == nil {
						n++
					}
				}
			}
		}()
		out, _ := exec.Command("taskset", "-c", "0", b.bin["loadgen"], "h1", "-addr", fmt.Sprintf("127.0.0.1:%d", ports["terminator"][0]),
			"-sni", "localhost", "-rate", "1000", "-c", "64", "-d", b.opts.dur.String(), "-n", "1000000").CombinedOutput()
		close(stop)
		return string(out), <-done
	}
	base, _ := run(false)
	withReloads, n := run(true)
	okA, _, p99A, errA := parseLoadgen(base)
	okB, _, p99B, errB := parseLoadgen(withReloads)
	ratio := 0.0
	if p99A > 0 {
		ratio = p99B / p99A
	}
	b.logf("reload: %d certificate swaps; without: ok=%d p99=%.2fms %v; with: ok=%d p99=%.2fms %v; p99 ratio %.2f", n, okA, p99A, errA, okB, p99B, errB, ratio)
	failed := func(err error) string {
		if err == nil {
			return "0"
		}
		return err.Error()
	}
	b.extra = append(b.extra, "\n### Certificate reload every second under load (terminator, 1,000 req/s keep-alive)\n\n| run | requests ok | failed | p99 |\n|---|---|---|---|",
		fmt.Sprintf("| no reloads | %d | %s | %.2f ms |", okA, failed(errA), p99A),
		fmt.Sprintf("| %d reloads | %d | %s | %.2f ms (%.2f× no-reload) |", n, okB, failed(errB), p99B, ratio))
	return nil
}

// rewriteCert atomically replaces the ECDSA certificate terminator serves.
func (b *bench) rewriteCert() error {
	c, k, err := b.ca.Issue(pki.Request{CommonName: "localhost", DNSNames: []string{"localhost"}, Usage: pki.ServerAuth})
	if err != nil {
		return err
	}
	kp, _ := pki.KeyPEM(k)
	tmp := filepath.Join(b.opts.work, "ec.pem.tmp")
	if err := os.WriteFile(tmp, append(pki.CertPEM(c), kp...), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(b.opts.work, "ec.pem"))
}
