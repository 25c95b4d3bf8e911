package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/terminator-proxy/terminator/amphora/haproxycfg"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/internal/atomicfile"
)

// The files of one load balancer, as the amphora keeps them.
func (s *Server) lbDir(lb string) string    { return filepath.Join(s.opts.Config.BasePath, lb) }
func (s *Server) cfgPath(lb string) string  { return filepath.Join(s.lbDir(lb), "haproxy.cfg") }
func (s *Server) certDir(lb string) string  { return filepath.Join(s.opts.Config.BaseCertDir, lb) }
func (s *Server) stopPath(lb string) string { return filepath.Join(s.lbDir(lb), "stopped") }

// loadBalancers lists the load balancers with an accepted configuration.
func (s *Server) loadBalancers() []string {
	entries, _ := os.ReadDir(s.opts.Config.BasePath)
	var out []string
	for _, e := range entries {
		if e.IsDir() && idPattern.MatchString(e.Name()) {
			if _, err := os.Stat(s.cfgPath(e.Name())); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// translate reads an accepted haproxy.cfg into terminator's configuration.
// Its peers section (ACTIVE_STANDBY) names this amphora by Octavia's hash
// of its id; the updates are authenticated with the heartbeat key, which
// the controller gives every amphora.
func (s *Server) translate(data []byte) (*config.Config, error) {
	cfg, err := haproxycfg.Translate(data, s.readCertFile)
	if err != nil {
		return nil, err
	}
	if p := cfg.Peers; p != nil {
		sum := sha256.Sum256([]byte("terminator-peers\x00" + s.opts.Config.Heartbeat.Key))
		p.Local, p.Key = haproxycfg.LocalPeer(s.opts.Config.AmphoraID), hex.EncodeToString(sum[:])
		if !slices.ContainsFunc(p.Peers, func(peer config.Peer) bool { return peer.Name == p.Local }) {
			cfg.Peers = nil // not listed (a SINGLE amphora renders none): nothing to share
		}
	}
	cfg.ApplyDefaults()
	if _, err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// readCertFile lets a crt-list name only files in the certificate tree.
func (s *Server) readCertFile(path string) ([]byte, error) {
	base := filepath.Clean(s.opts.Config.BaseCertDir) + string(filepath.Separator)
	if !strings.HasPrefix(filepath.Clean(path), base) {
		return nil, fmt.Errorf("outside %s", s.opts.Config.BaseCertDir)
	}
	return os.ReadFile(path)
}

// putHAProxy accepts a rendered haproxy.cfg once it translates and builds;
// a refused one is kept as haproxy.cfg.new-failed and nothing changes.
func (s *Server) putHAProxy(w http.ResponseWriter, r *http.Request) {
	amp, lb := r.PathValue("amphora"), r.PathValue("lb")
	if !validID(w, "amphora", amp) || !validID(w, "load balancer", lb) {
		return
	}
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.lbDir(lb), 0o755); err != nil {
		message(w, http.StatusInternalServerError, "Unable to store the configuration", err.Error())
		return
	}
	newPath := s.cfgPath(lb) + ".new"
	if err := atomicfile.Write(newPath, data, 0o600); err != nil {
		message(w, http.StatusInternalServerError, "Unable to store the configuration", err.Error())
		return
	}
	cfg, err := s.translate(data)
	if err == nil {
		err = s.opts.Plane.Check(r.Context(), cfg)
	}
	if err != nil {
		_ = os.Rename(newPath, s.cfgPath(lb)+".new-failed")
		s.log.Warn("agent: haproxy.cfg refused", "lb", lb, "err", err)
		message(w, http.StatusBadRequest, "Invalid request", err.Error())
		return
	}
	if err := os.Rename(newPath, s.cfgPath(lb)); err != nil {
		message(w, http.StatusInternalServerError, "Unable to store the configuration", err.Error())
		return
	}
	w.Header().Set("ETag", md5hex(data))
	writeJSON(w, http.StatusAccepted, map[string]any{"message": "OK"})
}

func (s *Server) getHAProxy(w http.ResponseWriter, r *http.Request) {
	lb := r.PathValue("lb")
	if !validID(w, "load balancer", lb) {
		return
	}
	data, err := os.ReadFile(s.cfgPath(lb))
	if err != nil {
		message(w, http.StatusNotFound, "Loadbalancer Not Found", "No loadbalancer with UUID: "+lb)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("ETag", md5hex(data))
	_, _ = w.Write(data)
}

// action starts, stops or reloads a load balancer: the configuration the
// data plane serves is that of every started load balancer.
func (s *Server) action(w http.ResponseWriter, r *http.Request) {
	lb, action := r.PathValue("lb"), strings.ToLower(r.PathValue("action"))
	if !slices.Contains([]string{"start", "stop", "reload"}, action) {
		message(w, http.StatusBadRequest, "Invalid Request", "Unknown action: "+action)
		return
	}
	if !validID(w, "load balancer", lb) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.cfgPath(lb)); err != nil {
		if fileExists(s.lvsPath(lb)) { // a UDP listener's id
			s.lvsAction(w, r, lb, action)
			return
		}
		message(w, http.StatusNotFound, "Loadbalancer Not Found", "No loadbalancer with UUID: "+lb)
		return
	}
	wasStopped := fileExists(s.stopPath(lb))
	if action == "stop" {
		if err := atomicfile.Write(s.stopPath(lb), nil, 0o600); err != nil {
			message(w, http.StatusInternalServerError, "Error stopping haproxy", err.Error())
			return
		}
	} else {
		_ = os.Remove(s.stopPath(lb))
	}
	if err := s.applyStarted(r.Context()); err != nil {
		if wasStopped { // put back what was serving
			_ = atomicfile.Write(s.stopPath(lb), nil, 0o600)
		} else if action == "stop" {
			_ = os.Remove(s.stopPath(lb))
		}
		message(w, http.StatusInternalServerError, fmt.Sprintf("Error %sing haproxy", action), err.Error())
		return
	}
	if action == "start" || (action == "reload" && wasStopped) {
		message(w, http.StatusAccepted, "OK", "Configuration file is valid\nhaproxy daemon for "+lb+" started")
		return
	}
	message(w, http.StatusAccepted, "OK", fmt.Sprintf("Listener %s %sed", lb, action))
}

// applyStarted serves the configuration of every started load balancer
// and UDP listener. s.mu must be held.
func (s *Server) applyStarted(ctx context.Context) error {
	merged, err := s.startedConfig(nil)
	if err != nil {
		return err
	}
	return s.opts.Plane.Apply(ctx, merged)
}

// startedConfig merges the configurations of every started load balancer
// and UDP listener, with the UDP listeners in extra (by id) started or
// replaced. s.mu must be held.
func (s *Server) startedConfig(extra map[string]*config.Config) (*config.Config, error) {
	merged := &config.Config{}
	for _, lb := range s.loadBalancers() {
		if fileExists(s.stopPath(lb)) {
			continue
		}
		data, err := os.ReadFile(s.cfgPath(lb))
		if err != nil {
			return nil, err
		}
		cfg, err := s.translate(data)
		if err != nil {
			return nil, fmt.Errorf("load balancer %s: %w", lb, err)
		}
		merged.Listeners = append(merged.Listeners, cfg.Listeners...)
		merged.Pools = append(merged.Pools, cfg.Pools...)
		if merged.Peers == nil {
			merged.Peers = cfg.Peers // an amphora serves one load balancer
		}
	}
	for _, id := range s.lvsListeners() {
		if _, replaced := extra[id]; replaced || !s.lvsStarted(id) {
			continue
		}
		data, err := os.ReadFile(s.lvsPath(id))
		if err != nil {
			return nil, err
		}
		cfg, err := s.translateLVS(id, data)
		if err != nil {
			return nil, err
		}
		merged.Listeners = append(merged.Listeners, cfg.Listeners...)
		merged.Pools = append(merged.Pools, cfg.Pools...)
	}
	for _, cfg := range extra {
		merged.Listeners = append(merged.Listeners, cfg.Listeners...)
		merged.Pools = append(merged.Pools, cfg.Pools...)
	}
	merged.ApplyDefaults()
	if _, err := merged.Validate(); err != nil && len(merged.Listeners) > 0 {
		return nil, err
	}
	return merged, nil
}

// Restore serves what was accepted and started before a restart, before
// the first controller call.
func (s *Server) Restore(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.applyStarted(ctx)
	if verr := s.restoreVRRP(); verr != nil {
		err = errors.Join(err, fmt.Errorf("keepalived: %w", verr))
	}
	return err
}

// deleteLB stops a load balancer and removes its files (200 also when it
// is unknown, as the agent answers).
func (s *Server) deleteLB(w http.ResponseWriter, r *http.Request) {
	lb := r.PathValue("lb")
	if !validID(w, "load balancer", lb) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.lbDir(lb)); errors.Is(err, fs.ErrNotExist) {
		if fileExists(s.lvsPath(lb)) { // a UDP listener's id
			s.deleteLVS(w, r, lb)
			return
		}
		message(w, http.StatusOK, "OK", "")
		return
	}
	if err := atomicfile.Write(s.stopPath(lb), nil, 0o600); err == nil {
		if err := s.applyStarted(r.Context()); err != nil {
			_ = os.Remove(s.stopPath(lb))
			message(w, http.StatusInternalServerError, "Error stopping haproxy", err.Error())
			return
		}
	}
	_ = os.RemoveAll(s.certDir(lb))
	_ = os.RemoveAll(s.lbDir(lb))
	message(w, http.StatusOK, "OK", "")
}

// listListeners reports every listener of every accepted configuration,
// with the type the agent derives (HTTP, TCP, TERMINATED_HTTPS).
func (s *Server) listListeners(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, lb := range s.loadBalancers() {
		data, err := os.ReadFile(s.cfgPath(lb))
		if err != nil {
			continue
		}
		cfg, err := haproxycfg.Translate(data, s.readCertFile)
		if err != nil {
			continue
		}
		for _, l := range cfg.Listeners {
			out = append(out, map[string]any{"status": "ACTIVE", "uuid": l.ID, "type": l.Protocol})
		}
	}
	for _, id := range s.lvsListeners() {
		out = append(out, map[string]any{"status": s.lvsStatus(id), "uuid": id, "type": "UDP"})
	}
	writeJSON(w, http.StatusOK, out)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
