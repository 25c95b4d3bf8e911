package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/terminator-proxy/terminator/internal/atomicfile"
)

// ACTIVE_STANDBY: the controller uploads the keepalived configuration its
// KeepalivedJinjaTemplater renders (PUT /1.0/vrrp/upload) and starts,
// stops or reloads keepalived (PUT /1.0/vrrp/<action>). The agent runs the
// real keepalived, VRRP subsystem only, inside the amphora namespace,
// with the files where Octavia's agent keeps them. The configuration's
// vrrp_script runs base_path/vrrp/check_script.sh, which runs every script
// in check_scripts/; the agent's own, terminator_check_script.sh, runs
// Options.VRRPCheck, which fails when terminator does not serve: keepalived
// then leaves MASTER and the peer takes the VIP.

func (s *Server) vrrpDir() string     { return filepath.Join(s.opts.Config.BasePath, "vrrp") }
func (s *Server) vrrpConf() string    { return filepath.Join(s.vrrpDir(), "octavia-keepalived.conf") }
func (s *Server) vrrpPIDFile() string { return filepath.Join(s.vrrpDir(), "octavia-keepalived.pid") }
func (s *Server) vrrpStarted() string { return s.vrrpConf() + ".started" }

// keepalivedBin is Debian's keepalived.
const keepalivedBin = "/usr/sbin/keepalived"

// keepalivedSecurityOnly is keepalived's exit status when its
// configuration test found nothing but script-security warnings
// (KEEPALIVED_EXIT_CONFIG_TEST_SECURITY); 5 means errors.
const keepalivedSecurityOnly = 6

// vrrpTimeout bounds keepalived's start, stop and configuration test.
const vrrpTimeout = 10 * time.Second

// putVRRP answers PUT /1.0/vrrp/upload: the configuration is kept once
// keepalived's own configuration test passes in the amphora namespace
// (where the VRRP interface is), with the check scripts beside it.
func (s *Server) putVRRP(w http.ResponseWriter, r *http.Request) {
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Join(s.vrrpDir(), "check_scripts"), 0o755); err != nil {
		message(w, http.StatusInternalServerError, "Unable to store the configuration", err.Error())
		return
	}
	candidate := s.vrrpConf() + ".new"
	if err := atomicfile.Write(candidate, data, 0o644); err != nil {
		message(w, http.StatusInternalServerError, "Unable to store the configuration", err.Error())
		return
	}
	if err := s.writeCheckScripts(); err != nil { // the configuration names them
		message(w, http.StatusInternalServerError, "Unable to store the check scripts", err.Error())
		return
	}
	if err := s.keepalivedTest(candidate); err != nil {
		_ = os.Rename(candidate, s.vrrpConf()+".new-failed")
		s.log.Warn("agent: keepalived configuration refused", "err", err)
		message(w, http.StatusBadRequest, "Invalid request", err.Error())
		return
	}
	if err := os.Rename(candidate, s.vrrpConf()); err != nil {
		message(w, http.StatusInternalServerError, "Unable to store the configuration", err.Error())
		return
	}
	w.Header().Set("ETag", md5hex(data))
	writeJSON(w, http.StatusOK, map[string]any{"message": "OK"})
}

// keepalivedTest runs keepalived's configuration test on path.
func (s *Server) keepalivedTest(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), vrrpTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, keepalivedBin, "--config-test", "--use-file", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := s.startIn(cmd); err != nil {
		return fmt.Errorf("keepalived: %w", err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == keepalivedSecurityOnly {
		// Octavia's configuration runs its check script as root without
		// script_security, as Octavia's amphorae do: a warning, not an error.
		s.log.Info("keepalived --config-test: only its script-security warning", "output", strings.TrimSpace(out.String()))
		err = nil
	}
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + " …"
		}
		return fmt.Errorf("keepalived --config-test: %v: %s", err, msg)
	}
	return nil
}

// writeCheckScripts writes check_script.sh, which runs every script in
// check_scripts/ and fails if one does (the contract of Octavia's), and
// terminator's own check there.
func (s *Server) writeCheckScripts() error {
	dir := filepath.Join(s.vrrpDir(), "check_scripts")
	runner := "#!/bin/sh\n# keepalived's vrrp_script: every check in " + dir + " must pass.\nstatus=0\n" +
		"for f in " + shellQuote(dir) + "/*; do\n  [ -f \"$f\" ] || continue\n  sh \"$f\" || status=1\ndone\nexit $status\n"
	check := "#!/bin/sh\n# terminator serves (in place of Octavia's haproxy check).\nexit 1\n"
	if len(s.opts.VRRPCheck) > 0 {
		quoted := make([]string, len(s.opts.VRRPCheck))
		for i, a := range s.opts.VRRPCheck {
			quoted[i] = shellQuote(a)
		}
		check = "#!/bin/sh\n# terminator serves (in place of Octavia's haproxy check).\nexec " + strings.Join(quoted, " ") + "\n"
	}
	if err := atomicfile.Write(filepath.Join(dir, "terminator_check_script.sh"), []byte(check), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(s.vrrpDir(), "check_script.sh"), []byte(runner), 0o755)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// vrrpAction answers PUT /1.0/vrrp/<action>: start (a reload when it
// runs, as Octavia's agent does), stop, reload.
func (s *Server) vrrpAction(w http.ResponseWriter, r *http.Request) {
	action := strings.ToLower(r.PathValue("action"))
	if !slices.Contains([]string{"start", "stop", "reload"}, action) {
		message(w, http.StatusBadRequest, "Invalid Request", "Unknown action: "+action)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !fileExists(s.vrrpConf()) {
		message(w, http.StatusNotFound, "Not Found", "no keepalived configuration was uploaded")
		return
	}
	pid := s.keepalivedPID()
	if action == "start" && pid != 0 {
		action = "reload"
	}
	var err error
	switch {
	case action == "stop":
		_ = os.Remove(s.vrrpStarted())
		err = s.stopKeepalived(pid)
	case action == "reload" && pid != 0:
		err = syscall.Kill(pid, syscall.SIGHUP)
	default: // start, or reload of a keepalived that is not running
		if err = atomicfile.Write(s.vrrpStarted(), nil, 0o600); err == nil {
			err = s.startKeepalived()
		}
	}
	if err != nil {
		message(w, http.StatusInternalServerError, "Failed to "+action+" keepalived service", err.Error())
		return
	}
	message(w, http.StatusAccepted, "OK", "keepalived "+action+"ed")
}

// keepalivedPID is the pid of the running keepalived, or 0.
func (s *Server) keepalivedPID() int {
	data, err := os.ReadFile(s.vrrpPIDFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// startKeepalived starts keepalived in the amphora namespace and waits
// for its pid file. keepalived stays in the foreground, a child the agent
// reaps; its log goes to the agent's.
func (s *Server) startKeepalived() error {
	_ = os.Remove(s.vrrpPIDFile())
	cmd := exec.Command(keepalivedBin, "--dont-fork", "--log-console", "--vrrp", "--use-file", s.vrrpConf(),
		"--pid", s.vrrpPIDFile(), "--vrrp_pid", s.vrrpPIDFile()+".vrrp")
	logw := slog.NewLogLogger(s.log.With("component", "keepalived").Handler(), slog.LevelInfo).Writer()
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group: the agent's signals are not its
	if err := s.startIn(cmd); err != nil {
		return fmt.Errorf("starting keepalived: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it whenever it exits
	deadline := time.After(vrrpTimeout)
	for s.keepalivedPID() == 0 {
		select {
		case err := <-exited:
			return fmt.Errorf("keepalived exited at start: %v", err)
		case <-deadline:
			_ = cmd.Process.Kill()
			return errors.New("keepalived wrote no pid file in time")
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.log.Info("keepalived started", "pid", cmd.Process.Pid)
	return nil
}

// stopKeepalived stops keepalived (it releases the VIP as it goes).
func (s *Server) stopKeepalived(pid int) error {
	if pid == 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	for deadline := time.Now().Add(vrrpTimeout); syscall.Kill(pid, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return errors.New("keepalived did not stop in time; killed")
		}
	}
	return nil
}

// StopVRRP stops keepalived at the agent's shutdown, so that the peer
// takes the VIP at once rather than after missed adverts; a start marker
// stays, so the next agent starts it again.
func (s *Server) StopVRRP() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopKeepalived(s.keepalivedPID())
}

// restoreVRRP starts keepalived if it was started before a restart.
func (s *Server) restoreVRRP() error {
	if !fileExists(s.vrrpStarted()) || !fileExists(s.vrrpConf()) || s.keepalivedPID() != 0 {
		return nil
	}
	if err := s.writeCheckScripts(); err != nil {
		return err
	}
	return s.startKeepalived()
}

// startIn starts cmd in the amphora namespace, or here without one.
func (s *Server) startIn(cmd *exec.Cmd) error {
	if s.opts.Net != nil {
		return s.opts.Net.Start(cmd)
	}
	return cmd.Start()
}
