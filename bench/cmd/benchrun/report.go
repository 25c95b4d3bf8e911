package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// targets are issue 3's goals: terminator's CPU per unit of work as a ratio
// to haproxy's (memory: KiB per idle connection).
var targets = map[string]float64{"h1-ka": 0.8, "h1-fix": 0.8, "h2-ka": 1.0, "h2-fix": 1.0, "hs-ec": 0.8, "hs-ec-max": 0.8, "hs-rsa": 1.2, "hs-rsa-max": 1.2, "hs-res": 0.8, "grpc": 1.3}

type cell struct {
	rps, cpu, p99      []float64
	vsHaproxy, vsNginx []float64
	vsBase             []float64 // terminator ÷ terminator-base (A/B runs)
	mismatch, errs     int
	steal              []float64
	beNew              []float64
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(xs []float64) float64 {
	m := median(xs)
	if len(xs) < 2 || m == 0 {
		return 0
	}
	return (slices.Max(xs) - slices.Min(xs)) / m * 100
}

func (b *bench) aggregate() (map[string]map[string]*cell, []string) {
	cells := map[string]map[string]*cell{}
	var order []string
	byRep := map[string]map[int]map[string]row{}
	for _, r := range b.rows {
		if cells[r.scenario] == nil {
			cells[r.scenario] = map[string]*cell{}
			byRep[r.scenario] = map[int]map[string]row{}
			order = append(order, r.scenario)
		}
		c := cells[r.scenario][r.frontend]
		if c == nil {
			c = &cell{}
			cells[r.scenario][r.frontend] = c
		}
		c.rps = append(c.rps, r.rps)
		c.cpu = append(c.cpu, r.cpuMsPer1k)
		c.p99 = append(c.p99, r.p99)
		c.beNew = append(c.beNew, float64(r.beNew))
		c.steal = append(c.steal, r.stealPct)
		if r.backendMismatch {
			c.mismatch++
		}
		if r.loadErr != "" {
			c.errs++
		}
		if byRep[r.scenario][r.rep] == nil {
			byRep[r.scenario][r.rep] = map[string]row{}
		}
		byRep[r.scenario][r.rep][r.frontend] = r
	}
	for sc, reps := range byRep {
		for _, fr := range reps {
			for f, r := range fr {
				if h, ok := fr["haproxy"]; ok && h.cpuMsPer1k > 0 {
					cells[sc][f].vsHaproxy = append(cells[sc][f].vsHaproxy, r.cpuMsPer1k/h.cpuMsPer1k)
				}
				if bs, ok := fr["terminator-base"]; ok && f == "terminator" && bs.cpuMsPer1k > 0 {
					cells[sc][f].vsBase = append(cells[sc][f].vsBase, r.cpuMsPer1k/bs.cpuMsPer1k)
				}
				if n, ok := fr["nginx"]; ok && n.cpuMsPer1k > 0 {
					cells[sc][f].vsNginx = append(cells[sc][f].vsNginx, r.cpuMsPer1k/n.cpuMsPer1k)
				}
			}
		}
	}
	return cells, order
}

func ratio(xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f [%.2f..%.2f]", median(xs), slices.Min(xs), slices.Max(xs))
}

func (b *bench) report() error {
	if err := os.MkdirAll(b.opts.out, 0o755); err != nil {
		return err
	}
	cells, order := b.aggregate()
	var md strings.Builder
	stamp := time.Now().UTC().Format("2006-01-02 15:04 UTC")
	env := "terminator with its packaged unit's environment (" + strings.Join(b.terminatorEnv(), " ") + ")"
	if len(b.opts.baseEnv) > 0 {
		env += ", terminator-base with " + strings.Join(b.opts.baseEnv, " ") + " on top"
	}
	fmt.Fprintf(&md, "## Bench results, %s\n\nMachine: %s. %d rep(s) × %v windows; frontends pinned to core 1 with one thread each, load and backend on core 0; %s.\n\n", stamp, machine(), b.opts.reps, b.opts.dur, env)
	md.WriteString("CPU is the frontend's utime+stime per 1,000 requests (per 1,000 connections for hs-*), median [spread %]. Ratios are taken within each repetition: median [min..max].\n\n")
	md.WriteString("Steal is the share of the proxy core the hypervisor gave to other guests during the window (max over repetitions); above ~20% a slice is disturbed.\n\n")
	md.WriteString("| scenario | frontend | req/s | CPU-ms/1k [spr] | ratio vs haproxy | ratio vs nginx | p99 ms | new backend conns | steal | checks |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sc := range order {
		for _, f := range b.opts.frontends {
			c := cells[sc][f]
			if c == nil {
				continue
			}
			checks := "ok"
			if c.mismatch > 0 {
				checks = fmt.Sprintf("!BACKEND_MISMATCH ×%d", c.mismatch)
			}
			if c.errs > 0 {
				checks += fmt.Sprintf(", load errors ×%d", c.errs)
			}
			p99 := "–"
			if median(c.p99) > 0 {
				p99 = fmt.Sprintf("%.1f", median(c.p99))
			}
			fmt.Fprintf(&md, "| %s | %s | %.0f | %.1f [%.0f%%] | %s | %s | %s | %.0f | %.0f%% | %s |\n", sc, f, median(c.rps), median(c.cpu), spread(c.cpu), ratio(c.vsHaproxy), ratio(c.vsNginx), p99, median(c.beNew), slices.Max(c.steal), checks)
		}
	}
	if len(b.mem) > 0 {
		md.WriteString("\n### Memory per idle TLS keep-alive connection (fresh process, one request each)\n\n| frontend | KiB per connection | RSS before → after |\n|---|---|---|\n")
		for _, f := range b.opts.frontends {
			var per []float64
			var last memRow
			for _, m := range b.mem {
				if m.frontend == f {
					per = append(per, m.perConnKiB)
					last = m
				}
			}
			if len(per) > 0 {
				fmt.Fprintf(&md, "| %s | %.1f [%.1f..%.1f] | %.1f → %.1f MiB (%d conns) |\n", f, median(per), slices.Min(per), slices.Max(per), float64(last.before)/1024, float64(last.after)/1024, last.open)
			}
		}
	}
	for _, l := range b.extra {
		md.WriteString(l + "\n")
	}
	md.WriteString("\n### terminator against the targets (CPU ratio to haproxy; memory in KiB)\n\n| scenario | target | measured | met |\n|---|---|---|---|\n")
	for _, sc := range order {
		t, ok := targets[sc]
		c := cells[sc]["terminator"]
		if !ok || c == nil || len(c.vsHaproxy) == 0 {
			continue
		}
		m := median(c.vsHaproxy)
		fmt.Fprintf(&md, "| %s | ≤ %.1f | %.2f | %s |\n", sc, t, m, map[bool]string{true: "yes", false: "no"}[m <= t])
	}
	for _, m := range b.mem {
		if m.frontend == "terminator" {
			var per []float64
			for _, x := range b.mem {
				if x.frontend == "terminator" {
					per = append(per, x.perConnKiB)
				}
			}
			fmt.Fprintf(&md, "| idle connection memory | ≤ 12 KiB | %.1f KiB | %s |\n", median(per), map[bool]string{true: "yes", false: "no"}[median(per) <= 12])
			break
		}
	}
	if b.opts.base != "" || b.opts.boring {
		other := "built from " + b.opts.base
		if b.opts.boring {
			other = "with BoringCrypto (GOEXPERIMENT=boringcrypto)"
		}
		if len(b.opts.baseEnv) > 0 {
			other += " run with " + strings.Join(b.opts.baseEnv, " ")
		}
		fmt.Fprintf(&md, "\n### A/B: terminator ÷ terminator %s (CPU per unit, same repetition)\n\n| scenario | ratio |\n|---|---|\n", other)
		for _, sc := range order {
			if c := cells[sc]["terminator"]; c != nil && len(c.vsBase) > 0 {
				fmt.Fprintf(&md, "| %s | %s |\n", sc, ratio(c.vsBase))
			}
		}
	}
	report := md.String()
	if err := os.WriteFile(filepath.Join(b.opts.out, "report.md"), []byte(report), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.opts.out, "chart.svg"), []byte(b.chart(cells, order)), 0o644); err != nil {
		return err
	}
	if err := b.writeCSV(); err != nil {
		return err
	}
	results := filepath.Dir(b.opts.out)
	_ = os.WriteFile(filepath.Join(results, "latest.md"), []byte(report), 0o644)
	_ = os.WriteFile(filepath.Join(results, "latest.svg"), []byte(b.chart(cells, order)), 0o644)
	if !b.opts.quick {
		if err := updateREADME(filepath.Join(b.opts.repo, "README.md"), report); err != nil {
			fmt.Fprintln(os.Stderr, "README not updated:", err)
		}
	}
	fmt.Println()
	fmt.Print(report)
	fmt.Printf("\nwritten to %s\n", b.opts.out)
	return nil
}

func (b *bench) writeCSV() error {
	f, err := os.Create(filepath.Join(b.opts.out, "raw.csv"))
	if err != nil {
		return err
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"rep", "scenario", "frontend", "ok", "rps", "cpu_ms_per_1k", "p99_ms", "backend_reqs", "backend_new_conns", "backend_mismatch", "steal_pct", "load_error"})
	for _, r := range b.rows {
		_ = w.Write([]string{fmt.Sprint(r.rep + 1), r.scenario, r.frontend, fmt.Sprint(r.ok), fmt.Sprintf("%.1f", r.rps), fmt.Sprintf("%.2f", r.cpuMsPer1k), fmt.Sprintf("%.3f", r.p99), fmt.Sprint(r.backendReqs), fmt.Sprint(r.beNew), fmt.Sprint(r.backendMismatch), fmt.Sprintf("%.1f", r.stealPct), r.loadErr})
	}
	for _, m := range b.mem {
		_ = w.Write([]string{fmt.Sprint(m.rep + 1), "mem", m.frontend, fmt.Sprint(m.open), "", fmt.Sprintf("%.2f", m.perConnKiB), "", fmt.Sprint(m.before), fmt.Sprint(m.after), "", "", ""})
	}
	w.Flush()
	return w.Error()
}

// chart draws the CPU ratio to haproxy per scenario as horizontal bars,
// with the 1.0 line and terminator's target.
func (b *bench) chart(cells map[string]map[string]*cell, order []string) string {
	const left, width, barH, gap = 110, 420, 12, 10
	maxR := 2.0
	for _, sc := range order {
		for _, c := range cells[sc] {
			if m := median(c.vsHaproxy); m > maxR {
				maxR = m
			}
		}
	}
	x := func(r float64) float64 { return left + r/maxR*width }
	colors := map[string]string{"haproxy": "#999", "nginx": "#2a7", "terminator": "#c33", "terminator-base": "#e99"}
	var s strings.Builder
	h := len(order)*(2*barH+gap) + 60
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", left+width+120, h)
	fmt.Fprintf(&s, `<text x="4" y="14">Frontend CPU per unit of work, ratio to haproxy (lower is better)</text>`+"\n")
	y := 30
	for _, sc := range order {
		fmt.Fprintf(&s, `<text x="4" y="%d">%s</text>`+"\n", y+barH+4, sc)
		for _, f := range []string{"nginx", "terminator-base", "terminator"} {
			c := cells[sc][f]
			if c == nil || len(c.vsHaproxy) == 0 {
				continue
			}
			m := median(c.vsHaproxy)
			fmt.Fprintf(&s, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/><text x="%.1f" y="%d">%s %.2f</text>`+"\n", left, y, x(m)-left, barH-1, colors[f], x(m)+3, y+barH-2, f, m)
			y += barH
		}
		if t, ok := targets[sc]; ok {
			fmt.Fprintf(&s, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#000" stroke-dasharray="2,2"/>`+"\n", x(t), x(t), y-2*barH, y)
		}
		y += gap
	}
	fmt.Fprintf(&s, `<line x1="%.1f" x2="%.1f" y1="24" y2="%d" stroke="#555"/><text x="%.1f" y="%d">1.0 = haproxy; dashes: target</text>`+"\n", x(1), x(1), y, x(1)-40, y+14)
	s.WriteString("</svg>\n")
	return s.String()
}

var readmeBlock = regexp.MustCompile(`(?s)<!-- bench:begin -->.*<!-- bench:end -->`)

// updateREADME replaces the bench block of the README with the report.
func updateREADME(path, report string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !readmeBlock.Match(data) {
		return fmt.Errorf("no <!-- bench:begin --> block")
	}
	block := "<!-- bench:begin -->\n" + strings.Replace(report, "## Bench results", "### Latest bench run", 1) + "<!-- bench:end -->"
	return os.WriteFile(path, readmeBlock.ReplaceAll(data, []byte(block)), 0o644)
}
