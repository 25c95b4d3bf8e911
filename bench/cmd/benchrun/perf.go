package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// perfShares runs each -perf scenario once more against every frontend
// under `perf record` (sampling the frontend's processes only) and reports
// where each spends its CPU, by category, in CPU-µs per unit of work (the
// category's share of the samples times the window's CPU per unit). The
// same sampler on all three frontends is what lets a gap be explained:
// kernel work both pay, TLS crypto (OpenSSL's libcrypto/libssl against Go's
// crypto packages), Go's runtime (scheduler, collector, allocator), and
// the rest of the proxy's own code.
func (b *bench) perfShares() error {
	if len(b.opts.perf) == 0 {
		return nil
	}
	if _, err := exec.LookPath("perf"); err != nil {
		return fmt.Errorf("-perf needs perf (apt-get install linux-perf): %w", err)
	}
	if err := os.MkdirAll(b.opts.out, 0o755); err != nil {
		return err
	}
	b.extra = append(b.extra, "\n### Where the CPU goes (`perf record`, CPU-µs per request or connection)\n\n"+
		"| scenario | frontend | CPU-µs/unit without perf | under perf | kernel | TLS crypto | Go runtime | libc, syscall stubs, vDSO | proxy code | unattributed |\n|---|---|---|---|---|---|---|---|---|---|")
	for _, id := range b.opts.perf {
		if _, err := b.scenario(id); err != nil {
			return fmt.Errorf("-perf: %w", err)
		}
		for _, f := range b.opts.frontends {
			data := filepath.Join(b.opts.out, fmt.Sprintf("perf-%s-%s.data", id, f))
			pids := make([]string, 0, 2)
			for _, pid := range b.fronts[f].pids() {
				pids = append(pids, strconv.Itoa(pid))
			}
			secs := max(2*int(b.opts.dur.Seconds()), 2)
			rec := exec.Command("perf", "record", "-q", "-F", "199", "-p", strings.Join(pids, ","), "-o", data, "--", "sleep", strconv.Itoa(secs))
			var recErr bytes.Buffer
			rec.Stderr = &recErr
			if err := rec.Start(); err != nil {
				return fmt.Errorf("perf record: %w", err)
			}
			r := b.measureFor(id, f, time.Duration(secs+1)*time.Second)
			if err := rec.Wait(); err != nil {
				return fmt.Errorf("perf record %s %s: %v: %s", id, f, err, recErr.String())
			}
			rep, err := exec.Command("perf", "report", "-i", data, "--stdio", "-q", "--sort", "dso,sym").Output()
			if err != nil {
				return fmt.Errorf("perf report %s %s: %w", id, f, err)
			}
			syms := parsePerf(rep)
			shares := categorize(syms)
			top := filepath.Join(b.opts.out, fmt.Sprintf("perf-%s-%s-top.txt", id, f))
			if err := os.WriteFile(top, topSymbols(syms, 40), 0o644); err != nil {
				return err
			}
			_ = os.Remove(data) // tens of MB each; the top and the shares are kept
			us := r.cpuMsPer1k  // ms per 1,000 units = µs per unit
			cell := func(c string) string { return fmt.Sprintf("%.0f (%.0f%%)", us*shares[c]/100, shares[c]) }
			b.extra = append(b.extra, fmt.Sprintf("| %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %s |", id, f, b.medianCPU(id, f), us,
				cell(catKernel), cell(catCrypto), cell(catRuntime), cell(catLibc), cell(catProxy), cell(catUnknown)))
			b.logf("perf %s %-10s %.1f CPU-µs/unit: kernel %.0f%%, crypto %.0f%%, runtime %.0f%%, libc %.0f%%, proxy %.0f%%", id, f, us,
				shares[catKernel], shares[catCrypto], shares[catRuntime], shares[catLibc], shares[catProxy])
		}
	}
	return nil
}

// measureFor measures scenario id on front once with a window of d (the
// scenario's command line is built from the window, so it is built anew).
func (b *bench) measureFor(id, front string, d time.Duration) row {
	saved := b.opts.dur
	b.opts.dur = d
	defer func() { b.opts.dur = saved }()
	sc, _ := b.scenario(id)
	return b.measure(-1, sc, front)
}

// medianCPU is the median CPU-µs per unit of the scenario's repetitions
// on front, measured without perf ("–" when it was not measured).
func (b *bench) medianCPU(id, front string) string {
	var cpu []float64
	for _, r := range b.rows {
		if r.scenario == id && r.frontend == front && r.ok > 0 {
			cpu = append(cpu, r.cpuMsPer1k)
		}
	}
	if len(cpu) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", median(cpu))
}

// scenario returns the scenario named id.
func (b *bench) scenario(id string) (scenario, error) {
	for _, s := range b.scenarios() {
		if s.id == id {
			return s, nil
		}
	}
	return scenario{}, fmt.Errorf("unknown scenario %q", id)
}

// perfSym is one line of `perf report --sort dso,sym`.
type perfSym struct {
	pct       float64
	dso, name string
	kernel    bool
}

// perf report -q lines: "    12.34%  libcrypto.so.3     [.] sha256_block_data_order".
var perfLine = regexp.MustCompile(`^\s*([0-9.]+)%\s+(\S+)\s+\[([k.])\]\s+(.*)$`)

func parsePerf(out []byte) []perfSym {
	var syms []perfSym
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := perfLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pct, _ := strconv.ParseFloat(m[1], 64)
		syms = append(syms, perfSym{pct: pct, dso: m[2], kernel: m[3] == "k", name: strings.TrimSpace(m[4])})
	}
	return syms
}

const (
	catKernel  = "kernel"
	catCrypto  = "crypto"
	catRuntime = "runtime"
	catLibc    = "libc"
	catProxy   = "proxy"
	catUnknown = "unknown"
)

// goCrypto matches Go's crypto packages and their assembly, whose static
// symbols (p256MulInternal, gcmAesEnc…) carry no package prefix.
var goCrypto = regexp.MustCompile(`^(crypto/|vendor/golang\.org/x/crypto/|golang\.org/x/crypto/)|^(p256|gcmAes|aes|_?sha(1|256|512)|x25519|fiat|poly1305|chacha|ecdsa|addMulVVW|mulAddVWW)`)

// goSyscall matches Go's system call stubs, the counterpart of libc's
// wrappers (perf attributes to them the samples taken on the way back
// from the kernel, as it does to __libc_recv for haproxy).
var goSyscall = regexp.MustCompile(`^(syscall\.|internal/runtime/syscall/|golang\.org/x/sys/unix\.)`)

// goRuntime matches the runtime and its assembly helpers (aeshashbody is
// the map hash, not crypto).
var goRuntime = regexp.MustCompile(`^(runtime[./]|internal/runtime/|internal/bytealg\.|sync/atomic\.|gcWriteBarrier|mem(move|clr|eqbody)|aeshash|indexbytebody|cmpbody|countbody|gogo|morestack|procyield|cputicks|nanotime|walltime)`)

// categorize sums the samples' shares per category.
func categorize(syms []perfSym) map[string]float64 {
	out := map[string]float64{}
	for _, s := range syms {
		out[category(s)] += s.pct
	}
	return out
}

func category(s perfSym) string {
	switch {
	case s.kernel || strings.HasPrefix(s.dso, "[kernel"):
		return catKernel
	case strings.HasPrefix(s.dso, "libcrypto") || strings.HasPrefix(s.dso, "libssl"):
		return catCrypto
	case strings.HasPrefix(s.dso, "libc.") || strings.HasPrefix(s.dso, "libc-") || strings.HasPrefix(s.dso, "ld-linux"):
		return catLibc
	case s.dso == "[vdso]" || goSyscall.MatchString(s.name):
		return catLibc
	case s.dso == "[unknown]" || strings.HasPrefix(s.name, "0x"):
		return catUnknown
	case goRuntime.MatchString(s.name):
		return catRuntime
	case goCrypto.MatchString(s.name):
		return catCrypto
	}
	return catProxy
}

// topSymbols writes the n largest symbols with their category.
func topSymbols(syms []perfSym, n int) []byte {
	sorted := append([]perfSym(nil), syms...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].pct > sorted[j].pct })
	var buf bytes.Buffer
	for i, s := range sorted {
		if i == n {
			break
		}
		fmt.Fprintf(&buf, "%6.2f%%  %-8s %-22s %s\n", s.pct, category(s), s.dso, s.name)
	}
	return buf.Bytes()
}
