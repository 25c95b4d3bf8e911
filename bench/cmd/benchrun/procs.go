package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a started process group (the frontend and its children).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
}

// start runs argv pinned to cpu in its own process group, logging to
// work/<name>.log.
func (b *bench) start(name string, cpu int, env []string, argv ...string) (*proc, error) {
	lf, err := os.Create(filepath.Join(b.opts.work, name+".log"))
	if err != nil {
		return nil, err
	}
	args := append([]string{"-c", strconv.Itoa(cpu)}, argv...)
	cmd := exec.Command("taskset", args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: lf}
	b.procs = append(b.procs, p)
	return p, nil
}

func (p *proc) stop() {
	if p.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_, _ = p.cmd.Process.Wait()
	p.log.Close()
}

func (b *bench) stopAll() {
	for _, p := range b.procs {
		p.stop()
	}
	b.procs = nil
}

// pids returns the process and its descendants (nginx master + worker).
func (p *proc) pids() []int {
	root := p.cmd.Process.Pid
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); len(f) > 2 {
			pp, _ := strconv.Atoi(f[1])
			parent[pid] = pp
		}
	}
	var out []int
	for pid := range parent {
		for q := pid; q != 0; q = parent[q] {
			if q == root {
				out = append(out, pid)
				break
			}
			if _, ok := parent[q]; !ok {
				break
			}
		}
	}
	return out
}

// statFields returns /proc/pid/stat fields after the command name (state
// first), so utime is index 11 and stime 12.
func statFields(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

const clockTick = 100 // USER_HZ on Linux

// cpu returns the summed utime+stime of the process group, in seconds.
func (p *proc) cpu() float64 {
	var ticks int64
	for _, pid := range p.pids() {
		f := statFields(pid)
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return float64(ticks) / clockTick
}

// rssKiB returns the summed resident set of the process group.
func (p *proc) rssKiB() int64 {
	var total int64
	for _, pid := range p.pids() {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				total += n
			}
		}
		f.Close()
	}
	return total
}

// waitTLS waits until addr completes a TLS handshake for sni, or times out.
func waitTLS(addr, sni string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var c *tls.Conn
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: sni})
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not accept TLS within %v: %v", addr, timeout, err)
}

// cpuTimes returns (steal, total) jiffies of one CPU from /proc/stat: steal
// is time the hypervisor gave to other guests, the main source of noise
// on a shared VM.
func cpuTimes(cpu int) (steal, total int64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	prefix := fmt.Sprintf("cpu%d ", cpu)
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseInt(f, 10, 64)
			if i < 8 { // user nice system idle iowait irq softirq steal
				total += v
			}
			if i == 7 {
				steal = v
			}
		}
	}
	return steal, total
}
