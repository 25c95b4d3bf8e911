package agent

import (
	"bufio"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

func hostname() string {
	h, _ := os.Hostname()
	return h
}

func (s *Server) info(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"hostname": hostname(), "haproxy_version": HAProxyCompat, "api_version": "1.0",
		"terminator_version": s.opts.Version,
	})
}

// details reports the amphora's figures from /proc, as the agent does.
func (s *Server) details(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	lbs := s.loadBalancers()
	s.mu.Unlock()
	body := map[string]any{
		"hostname": hostname(), "haproxy_version": HAProxyCompat, "api_version": "1.0",
		"terminator_version": s.opts.Version, "active": true, "haproxy_count": len(lbs),
		"cpu_count": runtime.NumCPU(), "cpu": cpuStats(), "memory": memStats(), "disk": diskStats("/"),
		"load": loadAvg(), "networks": netStats(), "active_tuned_profiles": "",
		"topology": "SINGLE", "topology_status": "OK", "listeners": listenerIDs(s), "packages": map[string]any{},
	}
	writeJSON(w, http.StatusOK, body)
}

func listenerIDs(s *Server) []string {
	out := []string{}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, lb := range s.loadBalancers() {
		data, err := os.ReadFile(s.cfgPath(lb))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if id, ok := strings.CutPrefix(line, "frontend "); ok {
				out = append(out, strings.TrimSpace(id))
			}
		}
	}
	return append(out, s.lvsListeners()...)
}

// cpuStats is the first line of /proc/stat: total, user, system, soft_irq.
func cpuStats() map[string]string {
	out := map[string]string{}
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return out
	}
	f := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])
	if len(f) < 8 || f[0] != "cpu" {
		return out
	}
	total := 0
	for _, v := range f[1:] {
		n, _ := strconv.Atoi(v)
		total += n
	}
	out["total"], out["user"], out["system"], out["soft_irq"] = strconv.Itoa(total), f[1], f[3], f[7]
	return out
}

// memStats are /proc/meminfo's figures in kB under the agent's names.
func memStats() map[string]int {
	names := map[string]string{"MemTotal": "total", "MemFree": "free", "Buffers": "buffers", "Cached": "cached",
		"Shmem": "shared", "Slab": "slab", "SwapTotal": "swap_total", "SwapFree": "swap_free"}
	raw := map[string]int{}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			if name, ok := names[k]; ok {
				raw[name], _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			}
		}
		f.Close()
	}
	return map[string]int{"total": raw["total"], "free": raw["free"], "buffers": raw["buffers"], "cached": raw["cached"],
		"swap_used": raw["swap_total"] - raw["swap_free"], "shared": raw["shared"], "slab": raw["slab"]}
}

func diskStats(path string) map[string]uint64 {
	var st syscall.Statfs_t
	if syscall.Statfs(path, &st) != nil {
		return map[string]uint64{}
	}
	bs := uint64(st.Bsize)
	return map[string]uint64{"used": (st.Blocks - st.Bfree) * bs, "available": st.Bavail * bs}
}

func loadAvg() []string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return []string{}
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return []string{}
	}
	return f[:3]
}

// netStats are /proc/net/dev's bytes per interface.
func netStats() map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	f, err := os.Open("/proc/net/dev")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < 9 {
			continue
		}
		rx, _ := strconv.ParseInt(fields[0], 10, 64)
		tx, _ := strconv.ParseInt(fields[8], 10, 64)
		out[strings.TrimSpace(name)] = map[string]int64{"network_rx": rx, "network_tx": tx}
	}
	return out
}
