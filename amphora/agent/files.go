package agent

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/terminator-proxy/terminator/amphora/agentconf"
	"github.com/terminator-proxy/terminator/amphora/heartbeat"
	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/internal/atomicfile"
)

func (s *Server) certFile(w http.ResponseWriter, r *http.Request) (string, bool) {
	lb, file := r.PathValue("lb"), r.PathValue("file")
	if !validID(w, "load balancer", lb) {
		return "", false
	}
	if !certFilename.MatchString(file) || strings.Contains(file, "..") {
		message(w, http.StatusBadRequest, "Filename has wrong format", "")
		return "", false
	}
	return filepath.Join(s.certDir(lb), file), true
}

// putCert stores one file of a load balancer's certificates: a PEM bundle
// (certificate, key, chain), a client CA or CRL, or a crt-list (the
// absolute paths of bundles, one a line). Octavia's agent stores any
// bytes; terminator refuses what is neither, so that a damaged upload is
// seen at once rather than at the next reload.
func (s *Server) putCert(w http.ResponseWriter, r *http.Request) {
	path, ok := s.certFile(w, r)
	if !ok {
		return
	}
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	if err := checkCertFile(data); err != nil {
		message(w, http.StatusBadRequest, "Invalid request", fmt.Sprintf("%s: %v", r.PathValue("file"), err))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		message(w, http.StatusInternalServerError, "Unable to store the certificate", err.Error())
		return
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		message(w, http.StatusInternalServerError, "Unable to store the certificate", err.Error())
		return
	}
	w.Header().Set("ETag", md5hex(data))
	message(w, http.StatusOK, "OK", "")
}

// checkCertFile accepts PEM whose every block parses as what it says, or
// a crt-list of absolute paths.
func checkCertFile(data []byte) error {
	if !bytes.Contains(data, []byte("-----BEGIN ")) {
		lines := strings.Fields(string(data))
		if len(lines) == 0 {
			return fmt.Errorf("empty")
		}
		for _, l := range lines {
			if !filepath.IsAbs(l) || !strings.HasSuffix(l, ".pem") {
				return fmt.Errorf("neither PEM nor a crt-list of absolute .pem paths (%q)", truncate(l, 40))
			}
		}
		return nil
	}
	rest := data
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "X509 CRL" {
			continue // checked against its CA when the configuration is built
		}
		if _, err := certs.ParseCertificates(pem.EncodeToMemory(b)); err != nil && !strings.Contains(b.Type, "PRIVATE KEY") {
			return fmt.Errorf("PEM block %d (%s): %v", n, b.Type, err)
		}
	}
	if len(bytes.TrimSpace(rest)) > 0 && bytes.Contains(rest, []byte("-----")) {
		return fmt.Errorf("a PEM block is damaged")
	}
	if bytes.Contains(data, []byte("PRIVATE KEY")) {
		if _, err := certs.ParsePEM("upload", data, nil); err != nil {
			return err
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (s *Server) getCertMD5(w http.ResponseWriter, r *http.Request) {
	path, ok := s.certFile(w, r)
	if !ok {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		message(w, http.StatusNotFound, "Certificate Not Found", "No certificate with filename: "+r.PathValue("file"))
		return
	}
	sum := md5hex(data)
	w.Header().Set("ETag", sum)
	writeJSON(w, http.StatusOK, map[string]any{"md5sum": sum})
}

func (s *Server) deleteCert(w http.ResponseWriter, r *http.Request) {
	path, ok := s.certFile(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = os.Remove(path)
	message(w, http.StatusOK, "OK", "")
}

// putOwnCert rotates the agent's server certificate (certificate and key
// in one PEM); new connections use it, open ones carry on.
func (s *Server) putOwnCert(w http.ResponseWriter, r *http.Request) {
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	if _, err := certs.ParsePEM("upload", data, nil); err != nil {
		message(w, http.StatusBadRequest, "Invalid request", "the agent certificate was not replaced: "+err.Error())
		return
	}
	if err := atomicfile.Write(s.opts.Config.ServerCert, data, 0o600); err != nil {
		message(w, http.StatusInternalServerError, "Unable to update the agent certificate", err.Error())
		return
	}
	if _, err := s.serverCert(nil); err != nil {
		message(w, http.StatusInternalServerError, "Unable to update the agent certificate", err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"message": "OK"})
}

// putConfig replaces the agent's own configuration file; the heartbeat
// destinations, interval and key take effect at once (the options Octavia
// marks mutable); the others at the next start.
func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	data, ok := readBody(w, r)
	if !ok {
		return
	}
	c, err := agentconf.Parse(data)
	if err != nil {
		message(w, http.StatusInternalServerError, "Unable to update amphora-agent configuration.", err.Error())
		return
	}
	if s.opts.ConfigPath != "" {
		if err := atomicfile.Write(s.opts.ConfigPath, data, 0o600); err != nil {
			message(w, http.StatusInternalServerError, "Unable to update amphora-agent configuration.", err.Error())
			return
		}
	}
	if s.opts.Heartbeat != nil {
		s.opts.Heartbeat.Update(heartbeat.Settings{Destinations: c.Heartbeat.Destinations, Interval: c.Heartbeat.Interval, Key: c.Heartbeat.Key})
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"message": "OK"})
}
