package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func (b *bench) run() error {
	start := time.Now()
	if err := b.setup(); err != nil {
		return err
	}
	var err error
	if b.backend, err = b.start("backend", loadCPU, []string{"GOMAXPROCS=1"}, b.bin["backend"], "-addr", backendAddr, "-stats", statsAddr, "-grpc", grpcAddr); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	b.fronts = map[string]*proc{}
	for _, f := range b.opts.frontends {
		if err := b.restartFrontend(f); err != nil {
			return err
		}
	}
	b.logf("machine: %s", machine())
	// Warm-up: a short load on every frontend (JIT-free, but page faults,
	// caches and pools settle).
	for _, f := range b.opts.frontends {
		_ = exec.Command("taskset", "-c", "0", "wrk", "-t1", "-c10", "-d2s", fmt.Sprintf("https://127.0.0.1:%d/", ports[f][0])).Run()
	}
	for rep := range b.opts.reps {
		order := rotate(b.opts.frontends, rep)
		for _, sc := range b.scenarios() {
			if !b.opts.want(sc.id) || (b.opts.quick && !sc.quick && len(b.opts.scenarios) == 0) {
				continue
			}
			for _, f := range order {
				r := b.measure(rep, sc, f)
				b.rows = append(b.rows, r)
				b.logf("rep %d %-10s %-15s ok=%-7d rps=%-8.0f cpu-ms/1k=%-7.1f p99=%.1fms be_new=%d steal=%.0f%% %s%s", rep+1, sc.id, f, r.ok, r.rps, r.cpuMsPer1k, r.p99, r.beNew, r.stealPct,
					map[bool]string{true: "!BACKEND_MISMATCH ", false: ""}[r.backendMismatch], r.loadErr)
			}
		}
	}
	if err := b.profiles(); err != nil {
		return err
	}
	if err := b.perfShares(); err != nil {
		return err
	}
	if b.opts.want("mem") {
		if err := b.memory(); err != nil {
			return err
		}
	}
	if b.opts.want("sni") {
		if err := b.sniScale(); err != nil {
			return err
		}
	}
	if b.opts.want("reload") {
		if err := b.reloadUnderLoad(); err != nil {
			return err
		}
	}
	b.logf("total time %v", time.Since(start).Round(time.Second))
	return b.report()
}

func rotate(list []string, n int) []string {
	out := make([]string, len(list))
	for i := range list {
		out[i] = list[(i+n)%len(list)]
	}
	return out
}

func (b *bench) logf(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// memRow is the memory cost of idle TLS connections on a fresh process.
type memRow struct {
	rep           int
	frontend      string
	before, after int64 // KiB
	open          int
	perConnKiB    float64
}

// memory opens N idle keep-alive TLS connections (one request each) to a
// freshly started frontend and divides the RSS growth by N.
func (b *bench) memory() error {
	for rep := range b.opts.reps {
		for _, f := range rotate(b.opts.frontends, rep) {
			if err := b.restartFrontend(f); err != nil {
				return err
			}
			time.Sleep(time.Second)
			p := b.fronts[f]
			before := p.rssKiB()
			cmd := exec.Command("taskset", "-c", "0", b.bin["loadgen"], "idle", "-addr", fmt.Sprintf("127.0.0.1:%d", ports[f][0]), "-conns", fmt.Sprint(b.opts.memConns), "-hold", "120s")
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				return err
			}
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			var open, fail int
			fmt.Sscanf(line, "open=%d fail=%d", &open, &fail)
			time.Sleep(2 * time.Second)
			after := p.rssKiB()
			stdin.Close()
			_ = cmd.Wait()
			m := memRow{rep: rep, frontend: f, before: before, after: after, open: open}
			if open > 0 {
				m.perConnKiB = float64(after-before) / float64(open)
			}
			b.mem = append(b.mem, m)
			b.logf("mem rep %d %-10s %d conns (%d failed): %d -> %d KiB, %.1f KiB/conn", rep+1, f, open, fail, before, after, m.perConnKiB)
		}
	}
	// Leave fresh processes for whatever follows.
	for _, f := range b.opts.frontends {
		if err := b.restartFrontend(f); err != nil {
			return err
		}
	}
	return nil
}

func machine() string {
	cpu := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	goVer, _ := exec.Command("go", "env", "GOVERSION").Output()
	hv, _ := exec.Command("haproxy", "-v").Output()
	nv, _ := exec.Command("nginx", "-v").CombinedOutput()
	return fmt.Sprintf("%d vCPU %s, kernel %s, %s, %s, %s", numCPU(), cpu, strings.TrimSpace(string(kernel)),
		strings.TrimSpace(string(goVer)), firstLine(string(hv)), strings.TrimSpace(strings.TrimPrefix(string(nv), "nginx version: ")))
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, " - "); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// profiles runs each -profile scenario against terminator while taking a
// CPU profile from its admin endpoint, and saves the profile and its top.
func (b *bench) profiles() error {
	if len(b.opts.profile) == 0 || b.fronts["terminator"] == nil {
		return nil
	}
	if err := os.MkdirAll(b.opts.out, 0o755); err != nil {
		return err
	}
	for _, id := range b.opts.profile {
		sc, err := b.scenario(id)
		if err != nil {
			return fmt.Errorf("-profile: %w", err)
		}
		file := filepath.Join(b.opts.out, "terminator-"+id+".pprof")
		secs := int(b.opts.dur.Seconds()) - 1
		done := make(chan error, 1)
		go func() {
			out, err := exec.Command("curl", "-sf", "-o", file, fmt.Sprintf("http://127.0.0.1:9110/debug/pprof/profile?seconds=%d", secs)).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%v: %s", err, out)
			}
			done <- err
		}()
		r := b.measure(-1, sc, "terminator")
		if err := <-done; err != nil {
			return fmt.Errorf("profile %s: %w", id, err)
		}
		top, _ := exec.Command("go", "tool", "pprof", "-top", "-nodecount=40", b.bin["terminator"], file).CombinedOutput()
		_ = os.WriteFile(strings.TrimSuffix(file, ".pprof")+"-top.txt", top, 0o644)
		b.logf("profile %s: %d ok, %.1f CPU-ms/1k; %s", id, r.ok, r.cpuMsPer1k, file)
	}
	return nil
}
