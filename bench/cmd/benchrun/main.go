// Command benchrun measures terminator against haproxy and nginx on this
// machine, side by side, as bench/README.md describes: each frontend pinned
// to core 1 with one thread, load generators and the backend on core 0,
// frontends interleaved within each repetition in rotating order, and the
// primary metric the frontend's CPU time per 1,000 requests (or handshakes)
// as a ratio to haproxy's in the same repetition.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	quick     bool
	reps      int
	dur       time.Duration
	scenarios map[string]bool
	frontends []string
	memConns  int
	sniCerts  int
	work, out string
	profile   []string // scenarios to profile terminator under
	perf      []string // scenarios to sample every frontend under with perf
	base      string   // git ref built as the extra frontend "terminator-base"
	boring    bool     // the extra frontend is this tree built with BoringCrypto
	baseEnv   []string // VAR=value for terminator-base only (GC settings A/B)
	repo      string
}

func main() {
	var o options
	var scen, fronts string
	flag.BoolVar(&o.quick, "quick", false, "smoke run: 1 rep, short windows, fewer scenarios")
	flag.IntVar(&o.reps, "reps", 3, "repetitions")
	flag.DurationVar(&o.dur, "d", 8*time.Second, "load window per measurement")
	flag.StringVar(&scen, "s", "", "comma-separated scenarios (default: all)")
	flag.StringVar(&fronts, "f", "haproxy,nginx,terminator", "frontends")
	flag.IntVar(&o.memConns, "m", 1000, "idle connections for the memory test")
	flag.IntVar(&o.sniCerts, "sni", 10000, "certificates for the SNI scale test")
	var prof string
	flag.StringVar(&o.base, "base", "", "also measure terminator built from this git ref, as frontend terminator-base (A/B in one run)")
	flag.BoolVar(&o.boring, "boring", false, "also measure this tree built with GOEXPERIMENT=boringcrypto (cgo), as frontend terminator-base")
	var baseEnv string
	flag.StringVar(&baseEnv, "base-env", "", "comma-separated VAR=value given to terminator-base only (e.g. -base HEAD -base-env GOGC=50: one build, two GC settings)")
	flag.StringVar(&prof, "profile", "", "comma-separated scenarios to take a terminator CPU profile under (written to the results directory)")
	var perf string
	flag.StringVar(&perf, "perf", "", "comma-separated scenarios to run once more per frontend under perf record, reporting CPU by category (kernel, TLS crypto, Go runtime, libc, proxy code)")
	flag.StringVar(&o.out, "o", "", "results directory (default bench/results/<timestamp>)")
	flag.Parse()
	if o.quick {
		o.reps, o.dur, o.memConns, o.sniCerts = 1, 4*time.Second, 300, 2000
		if scen == "" {
			scen = "h1-ka,h2-ka,hs-ec,mem,reload"
		}
	}
	o.scenarios = map[string]bool{}
	for _, s := range strings.Split(scen, ",") {
		if s != "" {
			o.scenarios[s] = true
		}
	}
	o.frontends = strings.Split(fronts, ",")
	for _, kv := range strings.Split(baseEnv, ",") {
		if kv != "" {
			o.baseEnv = append(o.baseEnv, kv)
		}
	}
	if len(o.baseEnv) > 0 && o.base == "" && !o.boring {
		fmt.Fprintln(os.Stderr, "bench: -base-env applies to terminator-base; give -base REF (HEAD for this tree)")
		os.Exit(2)
	}
	if o.base != "" && o.boring {
		fmt.Fprintln(os.Stderr, "bench: -base and -boring both build terminator-base; pick one")
		os.Exit(2)
	}
	if o.base != "" || o.boring {
		o.frontends = append(o.frontends, "terminator-base")
	}
	if prof != "" {
		o.profile = strings.Split(prof, ",")
	}
	if perf != "" {
		o.perf = strings.Split(perf, ",")
	}
	wd, _ := os.Getwd()
	o.repo = wd
	o.work = filepath.Join(wd, "bench", "work")
	if o.out == "" {
		o.out = filepath.Join(wd, "bench", "results", time.Now().UTC().Format("20060102-150405"))
	}
	b := &bench{opts: o}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; b.stopAll(); os.Exit(130) }()
	err := b.run()
	b.stopAll()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (o *options) want(s string) bool { return len(o.scenarios) == 0 || o.scenarios[s] }
