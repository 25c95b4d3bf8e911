package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/terminator-proxy/terminator/amphora/lvscfg"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/internal/atomicfile"
)

// UDP listeners: Octavia uploads the keepalived-LVS configuration it
// renders for each (PUT …/udp_listener) and starts, stops, reloads and
// deletes it by listener id through the load balancer endpoints. The
// files are where Octavia's agent keeps them (base_path/lvs); a
// "<file>.running" beside a configuration marks it started, as a running
// keepalived does, and the data plane serves every started one (udprelay).

const lvsPrefix, lvsSuffix = "octavia-keepalivedlvs-", ".conf"

func (s *Server) lvsDir() string            { return filepath.Join(s.opts.Config.BasePath, "lvs") }
func (s *Server) lvsPath(id string) string  { return filepath.Join(s.lvsDir(), lvsPrefix+id+lvsSuffix) }
func (s *Server) lvsStarted(id string) bool { return fileExists(s.lvsPath(id) + ".running") }

// lvsListeners lists the UDP listeners with an accepted configuration.
func (s *Server) lvsListeners() []string {
	entries, _ := os.ReadDir(s.lvsDir())
	var out []string
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), lvsPrefix)
		if id, ok2 := strings.CutSuffix(id, lvsSuffix); ok && ok2 && idPattern.MatchString(id) && e.Type().IsRegular() {
			out = append(out, id)
		}
	}
	return out
}

// translateLVS reads a UDP listener's accepted configuration.
func (s *Server) translateLVS(id string, data []byte) (*config.Config, error) {
	cfg, err := lvscfg.Translate(id, data)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", id, err)
	}
	return cfg, nil
}

// putLVS answers PUT /1.0/listeners/<amphora>/<listener>/udp_listener: the
// configuration is kept once it translates and, with everything started,
// builds; it takes effect at the next start or reload, as with keepalived.
func (s *Server) putLVS(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("listener")
	if !validID(w, "amphora", r.PathValue("amphora")) || !validID(w, "listener", id) {
		return
	}
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg, err := s.translateLVS(id, data)
	if err == nil {
		var merged *config.Config
		if merged, err = s.startedConfig(map[string]*config.Config{id: cfg}); err == nil {
			err = s.opts.Plane.Check(r.Context(), merged)
		}
	}
	if err != nil {
		s.log.Warn("agent: UDP listener configuration refused", "listener", id, "err", err)
		message(w, http.StatusBadRequest, "Invalid request", err.Error())
		return
	}
	if err := os.MkdirAll(s.lvsDir(), 0o755); err != nil {
		message(w, http.StatusInternalServerError, "Unable to store the configuration", err.Error())
		return
	}
	if err := atomicfile.Write(s.lvsPath(id), data, 0o644); err != nil {
		message(w, http.StatusInternalServerError, "Unable to store the configuration", err.Error())
		return
	}
	w.Header().Set("ETag", md5hex(data))
	writeJSON(w, http.StatusOK, map[string]any{"message": "OK"})
}

// getLVS answers GET /1.0/listeners/<listener>/udp_listener.
func (s *Server) getLVS(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("listener")
	if !validID(w, "listener", id) {
		return
	}
	data, err := os.ReadFile(s.lvsPath(id))
	if err != nil {
		lvsNotFound(w, id)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write(data)
}

func lvsNotFound(w http.ResponseWriter, id string) {
	message(w, http.StatusNotFound, "UDP Listener Not Found", "No UDP listener with UUID: "+id)
}

// lvsAction starts, stops or reloads a UDP listener (Octavia's agent turns
// a reload into a restart, and says so).
func (s *Server) lvsAction(w http.ResponseWriter, r *http.Request, id, action string) {
	if !slices.Contains([]string{"start", "stop", "reload"}, action) {
		message(w, http.StatusBadRequest, "Invalid Request", "Unknown action: "+action)
		return
	}
	if action == "reload" {
		action = "restart"
	}
	marker := s.lvsPath(id) + ".running"
	was := s.lvsStarted(id)
	var err error
	if action == "stop" {
		err = os.Remove(marker)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
	} else {
		err = atomicfile.Write(marker, nil, 0o600)
	}
	if err == nil {
		err = s.applyStarted(r.Context())
	}
	if err != nil {
		if was { // put back what was serving
			_ = atomicfile.Write(marker, nil, 0o600)
		} else {
			_ = os.Remove(marker)
		}
		message(w, http.StatusInternalServerError, fmt.Sprintf("Failed to %s keepalivedlvs listener %s", action, id), err.Error())
		return
	}
	message(w, http.StatusAccepted, "OK", fmt.Sprintf("keepalivedlvs listener %s %sed", id, action))
}

// deleteLVS stops a UDP listener and removes its files.
func (s *Server) deleteLVS(w http.ResponseWriter, r *http.Request, id string) {
	marker := s.lvsPath(id) + ".running"
	if s.lvsStarted(id) {
		_ = os.Remove(marker)
		if err := s.applyStarted(r.Context()); err != nil {
			_ = atomicfile.Write(marker, nil, 0o600)
			message(w, http.StatusInternalServerError, "Error stopping keepalivedlvs", err.Error())
			return
		}
	}
	_ = os.Remove(s.lvsPath(id))
	writeJSON(w, http.StatusOK, map[string]any{"message": "OK"})
}

// lvsStatus is a UDP listener's status as GET /1.0/listeners reports it:
// ACTIVE when started with a virtual server, OFFLINE otherwise.
func (s *Server) lvsStatus(id string) string {
	if !s.lvsStarted(id) {
		return "OFFLINE"
	}
	data, err := os.ReadFile(s.lvsPath(id))
	if err != nil {
		return "ERROR"
	}
	if cfg, err := lvscfg.Translate(id, data); err != nil || len(cfg.Listeners) == 0 {
		return "OFFLINE"
	}
	return "ACTIVE"
}
