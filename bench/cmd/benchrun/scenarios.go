package main

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// scenario is one kind of load, run identically against every frontend.
type scenario struct {
	id    string
	unit  string // "req" or "conn": what CPU time is divided by
	quick bool   // part of the quick run
	// cmd returns the load command for a frontend's ECDSA and RSA ports.
	cmd func(b *bench, ec, rsa int) []string
	// parse extracts successful operations, req/s and p99 (ms) from output.
	parse func(out string) (ok int64, rps, p99 float64, err error)
}

func (b *bench) scenarios() []scenario {
	d := b.opts.dur
	secs := fmt.Sprintf("%d", int(d.Seconds()))
	lg := func(args ...string) []string {
		return append([]string{b.bin["loadgen"]}, args...)
	}
	url := func(port int) string { return fmt.Sprintf("https://127.0.0.1:%d/", port) }
	addr := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
	n := "1000000"
	return []scenario{
		{"h1-ka", "req", true, func(_ *bench, ec, _ int) []string {
			return []string{"wrk", "-t1", "-c50", "-d" + secs + "s", "--latency", url(ec)}
		}, parseWrk},
		{"h1-fix", "req", false, func(_ *bench, ec, _ int) []string {
			return []string{"h2load", "--h1", "-c50", "--rps=60", "-D", secs, url(ec)} // 50 × 60 = 3000 req/s
		}, parseH2load},
		{"h2-ka", "req", true, func(_ *bench, ec, _ int) []string {
			return []string{"h2load", "-c10", "-m10", "-D", secs, url(ec)}
		}, parseH2load},
		{"h2-fix", "req", false, func(_ *bench, ec, _ int) []string {
			return []string{"h2load", "-c10", "-m10", "--rps=300", "-D", secs, url(ec)} // 3000 req/s
		}, parseH2load},
		{"grpc", "req", false, func(b *bench, ec, _ int) []string { // unary calls, 100-byte payloads
			return []string{"h2load", "-c10", "-m10", "-D", secs, "-H", "content-type: application/grpc", "-H", "te: trailers",
				"-d", b.opts.work + "/grpc-req.bin", fmt.Sprintf("https://127.0.0.1:%d/grpc.testing.TestService/UnaryCall", ec)}
		}, parseH2load},
		{"hs-ec", "conn", true, func(_ *bench, ec, _ int) []string {
			return lg("hs", "-addr", addr(ec), "-rate", "250", "-c", "16", "-d", d.String(), "-n", n)
		}, parseLoadgen},
		{"hs-rsa", "conn", false, func(_ *bench, _, rsa int) []string {
			return lg("hs", "-addr", addr(rsa), "-rate", "250", "-c", "16", "-d", d.String(), "-n", n)
		}, parseLoadgen},
		{"hs-res", "conn", false, func(_ *bench, ec, _ int) []string {
			return lg("hs", "-addr", addr(ec), "-resume", "-rate", "250", "-c", "16", "-d", d.String(), "-n", n)
		}, parseLoadgen},
		{"hs-ec-max", "conn", false, func(_ *bench, ec, _ int) []string {
			return lg("hs", "-addr", addr(ec), "-c", "16", "-d", d.String(), "-n", n)
		}, parseLoadgen},
		{"hs-rsa-max", "conn", false, func(_ *bench, _, rsa int) []string {
			return lg("hs", "-addr", addr(rsa), "-c", "16", "-d", d.String(), "-n", n)
		}, parseLoadgen},
		{"body-down", "req", false, func(_ *bench, ec, _ int) []string {
			return lg("body", "-addr", addr(ec), "-down", "-c", "4", "-d", d.String(), "-n", n)
		}, parseLoadgen},
		{"body-up", "req", false, func(_ *bench, ec, _ int) []string {
			return lg("body", "-addr", addr(ec), "-up", "-c", "4", "-d", d.String(), "-n", n)
		}, parseLoadgen},
	}
}

// row is one measurement: a scenario against a frontend in one repetition.
type row struct {
	rep                  int
	scenario, frontend   string
	ok                   int64
	rps, p99, cpuMsPer1k float64
	backendReqs, beNew   int64
	stealPct             float64 // share of the proxy core stolen by the hypervisor
	backendMismatch      bool
	loadErr              string
}

// measure runs one scenario against one frontend and records CPU time.
func (b *bench) measure(rep int, sc scenario, front string) row {
	p := b.fronts[front]
	r := row{rep: rep, scenario: sc.id, frontend: front}
	reqs0, conns0 := backendStats()
	cpu0 := p.cpu()
	steal0, total0 := cpuTimes(proxyCPU)
	argv := sc.cmd(b, ports[front][0], ports[front][1])
	timeout := b.opts.dur + 30*time.Second
	cmd := exec.Command("timeout", append([]string{fmt.Sprintf("%d", int(timeout.Seconds())), "taskset", "-c", fmt.Sprint(loadCPU)}, argv...)...)
	out, err := cmd.CombinedOutput()
	cpu1 := p.cpu()
	steal1, total1 := cpuTimes(proxyCPU)
	if total1 > total0 {
		r.stealPct = float64(steal1-steal0) * 100 / float64(total1-total0)
	}
	time.Sleep(200 * time.Millisecond) // let the last backend exchanges finish
	reqs1, conns1 := backendStats()
	r.ok, r.rps, r.p99, r.loadErr = 0, 0, 0, ""
	ok, rps, p99, perr := sc.parse(string(out))
	if err != nil && perr == nil && ok == 0 {
		perr = fmt.Errorf("%v: %s", err, tail(string(out)))
	}
	if perr != nil {
		r.loadErr = perr.Error()
	}
	r.ok, r.rps, r.p99 = ok, rps, p99
	r.backendReqs, r.beNew = reqs1-reqs0, conns1-conns0
	// Every successful request must have reached the backend; wrk may stop
	// with requests in flight, which reached it without being counted ok.
	r.backendMismatch = r.backendReqs < r.ok || r.backendReqs > r.ok+100
	if r.ok > 0 {
		r.cpuMsPer1k = (cpu1 - cpu0) * 1000 / float64(r.ok) * 1000
	}
	return r
}

func backendStats() (reqs, conns int64) {
	resp, err := http.Get("http://" + statsAddr + "/")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	f := strings.Fields(string(body))
	if len(f) == 2 {
		reqs, _ = strconv.ParseInt(f[0], 10, 64)
		conns, _ = strconv.ParseInt(f[1], 10, 64)
	}
	return reqs, conns
}

var (
	wrkReqs    = regexp.MustCompile(`(\d+) requests in ([\d.]+)(\w+)`)
	wrkErrors  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkP99     = regexp.MustCompile(`\s99%\s+([\d.]+)(us|ms|s)`)
	h2Done     = regexp.MustCompile(`requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed`)
	h2Finished = regexp.MustCompile(`finished in ([\d.]+)(ms|s), ([\d.]+) req/s`)
	kv         = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S+)`)
)

func parseWrk(out string) (int64, float64, float64, error) {
	m := wrkReqs.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, 0, fmt.Errorf("wrk output not understood: %s", tail(out))
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	secs := toSeconds(m[2], m[3])
	var bad int64
	for _, e := range wrkErrors.FindAllStringSubmatch(out, -1) {
		for _, v := range e[1:] {
			x, _ := strconv.ParseInt(v, 10, 64)
			bad += x
		}
	}
	var p99 float64
	if pm := wrkP99.FindStringSubmatch(out); pm != nil {
		p99 = toSeconds(pm[1], pm[2]) * 1000
	}
	var err error
	if bad > 0 {
		err = fmt.Errorf("wrk reported %d errors", bad)
	}
	return n - bad, float64(n-bad) / secs, p99, err
}

func parseH2load(out string) (int64, float64, float64, error) {
	m := h2Done.FindStringSubmatch(out)
	f := h2Finished.FindStringSubmatch(out)
	if m == nil || f == nil {
		return 0, 0, 0, fmt.Errorf("h2load output not understood: %s", tail(out))
	}
	ok, _ := strconv.ParseInt(m[4], 10, 64)
	failed, _ := strconv.ParseInt(m[5], 10, 64)
	rps, _ := strconv.ParseFloat(f[3], 64)
	var err error
	if failed > 0 {
		err = fmt.Errorf("h2load: %d failed", failed)
	}
	return ok, rps, 0, err // h2load prints no percentiles
}

func parseLoadgen(out string) (int64, float64, float64, error) {
	v := map[string]string{}
	for _, m := range kv.FindAllStringSubmatch(out, -1) {
		v[m[1]] = strings.Trim(m[2], `"`)
	}
	if v["ok"] == "" {
		return 0, 0, 0, fmt.Errorf("loadgen output not understood: %s", tail(out))
	}
	ok, _ := strconv.ParseInt(v["ok"], 10, 64)
	rps, _ := strconv.ParseFloat(v["rps"], 64)
	p99, _ := strconv.ParseFloat(v["p99_ms"], 64)
	var err error
	switch {
	case v["fail"] != "0":
		err = fmt.Errorf("loadgen: %s failed (%s)", v["fail"], v["err"])
	case v["behind"] != "" && v["behind"] != "0":
		err = fmt.Errorf("loadgen fell behind the offered rate %s times (client-side saturation, not a proxy failure)", v["behind"])
	}
	return ok, rps, p99, err
}

func toSeconds(v, unit string) float64 {
	x, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return x / 1e6
	case "ms":
		return x / 1e3
	case "m":
		return x * 60
	}
	return x
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = "…" + s[len(s)-300:]
	}
	return strings.ReplaceAll(s, "\n", " | ")
}
