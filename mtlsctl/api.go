package mtlsctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/terminator-proxy/terminator/certs"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/sni"
)

// maxBody caps request bodies (configs and certificate bundles).
const maxBody = 8 << 20

type handler func(w http.ResponseWriter, r *http.Request) error

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h handler) { mux.Handle(pattern, s.wrap(h)) }
	route("GET /v1/status", s.getStatus)
	route("GET /v1/config", s.getConfig)
	route("PUT /v1/config", s.putConfig)
	route("GET /v1/listeners", s.listObjects("listeners"))
	route("GET /v1/listeners/{name}", s.getObject("listeners"))
	route("PUT /v1/listeners/{name}", s.direct(putListener))
	route("DELETE /v1/listeners/{name}", s.direct(deleteListener))
	route("GET /v1/pools", s.listObjects("pools"))
	route("GET /v1/pools/{name}", s.getObject("pools"))
	route("PUT /v1/pools/{name}", s.direct(putPool))
	route("DELETE /v1/pools/{name}", s.direct(deletePool))
	route("PUT /v1/pools/{name}/members", s.direct(putMembers))
	route("GET /v1/certificates", s.getCertificates)
	route("PUT /v1/certificates/{name}", s.putCertificate)
	route("PUT /v1/certificate", s.putOwnCertificate)
	route("POST /v1/transactions", s.beginTxn)
	route("GET /v1/transactions/{id}", s.getTxn)
	route("DELETE /v1/transactions/{id}", s.abortTxn)
	route("POST /v1/transactions/{id}/commit", s.commitTxn)
	route("PUT /v1/transactions/{id}/listeners/{name}", s.staged(putListener))
	route("DELETE /v1/transactions/{id}/listeners/{name}", s.staged(deleteListener))
	route("PUT /v1/transactions/{id}/pools/{name}", s.staged(putPool))
	route("DELETE /v1/transactions/{id}/pools/{name}", s.staged(deletePool))
	route("PUT /v1/transactions/{id}/pools/{name}/members", s.staged(putMembers))
	mux.Handle("/", s.wrap(func(http.ResponseWriter, *http.Request) error {
		return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no such endpoint"}
	}))
	return mux
}

// wrap runs a handler, writes its error, and logs every request with the
// client's identity.
func (s *Server) wrap(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if err := s.recheck(r.TLS); err != nil {
			w.Header().Set("Connection", "close") // HTTP/1.1; on HTTP/2 every later request is refused too
			rec.status = writeError(rec, s.log, &apiError{Status: http.StatusForbidden, Code: "client_refused",
				Message: "the client certificate is no longer accepted (" + sni.ClientCertReason(err) + ")"})
		} else if err := h(rec, r); err != nil {
			rec.status = writeError(rec, s.log, err)
		}
		client, serial := "-", "-"
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			c := r.TLS.PeerCertificates[0]
			client, serial = c.Subject.CommonName, c.SerialNumber.Text(16)
		}
		s.log.LogAttrs(r.Context(), slog.LevelInfo, "control request",
			slog.String("client", client), slog.String("client_serial", serial), slog.String("remote", r.RemoteAddr),
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", rec.status),
			slog.Duration("duration", time.Since(start)))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

func etag(v uint64) string { return strconv.Quote(strconv.FormatUint(v, 10)) }

// snapshot returns the committed config and version.
func (s *Server) snapshot() (*config.Config, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg, s.version
}

func (s *Server) getStatus(w http.ResponseWriter, _ *http.Request) error {
	cfg, v := s.snapshot()
	own := s.cert.Load()
	writeJSON(w, http.StatusOK, map[string]any{
		"build": s.opts.Build, "config_version": v, "uptime_seconds": int(time.Since(s.started).Seconds()),
		"listeners": len(cfg.Listeners), "pools": len(cfg.Pools),
		"control_certificate": map[string]any{"subject": own.Leaf().Subject.String(), "not_after": own.NotAfter},
	})
	return nil
}

func (s *Server) getConfig(w http.ResponseWriter, _ *http.Request) error {
	cfg, v := s.snapshot()
	dp, err := Extract(cfg)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(v))
	writeJSON(w, http.StatusOK, dp)
	return nil
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var dp DataPlane
	if err := decodeStrict(body, &dp); err != nil {
		return err
	}
	// A whole configuration names both lists, even when empty: a body
	// that forgets one must not wipe it.
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(body, &keys)
	for _, k := range []string{"listeners", "pools"} {
		if v, ok := keys[k]; !ok || string(v) == "null" {
			return badRequest("invalid_json", fmt.Sprintf("the body must give %q (an empty list removes them all)", k), nil)
		}
	}
	return s.commitAndReply(w, r.Context(), r.Header.Get("If-Match"), func(*config.Config) (*DataPlane, error) { return &dp, nil })
}

func (s *Server) listObjects(kind string) handler {
	return func(w http.ResponseWriter, _ *http.Request) error {
		cfg, v := s.snapshot()
		w.Header().Set("ETag", etag(v))
		if kind == "listeners" {
			writeJSON(w, http.StatusOK, map[string]any{"listeners": cfg.Listeners})
		} else {
			writeJSON(w, http.StatusOK, map[string]any{"pools": cfg.Pools})
		}
		return nil
	}
}

func (s *Server) getObject(kind string) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		cfg, v := s.snapshot()
		name := r.PathValue("name")
		w.Header().Set("ETag", etag(v))
		if kind == "listeners" {
			if i := findListener(cfg.Listeners, name); i >= 0 {
				writeJSON(w, http.StatusOK, cfg.Listeners[i])
				return nil
			}
		} else if p := cfg.FindPool(name); p != nil {
			writeJSON(w, http.StatusOK, p)
			return nil
		}
		return notFound(kind, name)
	}
}

// edit changes a data-plane copy; body is the request body.
type edit func(dp *DataPlane, name string, body []byte) error

// direct applies one edit as its own transaction, honouring If-Match. The
// body is read first; the edit is then made under the commit lock to the
// configuration current at that moment, so concurrent writers never lose
// each other's changes.
func (s *Server) direct(e edit) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		name := r.PathValue("name")
		return s.commitAndReply(w, r.Context(), r.Header.Get("If-Match"), func(cur *config.Config) (*DataPlane, error) {
			dp, err := Extract(cur)
			if err != nil {
				return nil, err
			}
			return dp, e(dp, name, body)
		})
	}
}

func (s *Server) commitAndReply(w http.ResponseWriter, ctx context.Context, ifMatch string, change func(*config.Config) (*DataPlane, error)) error {
	v, warnings, err := s.commit(ctx, ifMatch, nil, change)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(v))
	writeJSON(w, http.StatusOK, map[string]any{"version": v, "warnings": warnings})
	return nil
}

// commit makes change's data plane from the committed config, validates it
// merged into the running config, applies it, persists it and bumps the
// version, all under s.mu: the read-modify-write is one step, so every
// accepted write is in the result. ifMatch (an ETag) and base (a
// transaction's version; nil for none) must name the current version.
// The DataPlane change returns becomes part of the committed config and
// must not be shared. On any failure nothing changes.
func (s *Server) commit(ctx context.Context, ifMatch string, base *uint64, change func(*config.Config) (*DataPlane, error)) (uint64, config.Problems, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ifMatch != "" && ifMatch != "*" && ifMatch != etag(s.version) {
		return 0, nil, &apiError{Status: http.StatusPreconditionFailed, Code: "version_conflict",
			Message: fmt.Sprintf("If-Match %s does not match the current version %s; re-read and retry", ifMatch, etag(s.version))}
	}
	if base != nil && *base != s.version {
		return 0, nil, &apiError{Status: http.StatusConflict, Code: "version_conflict",
			Message: fmt.Sprintf("the transaction was staged on version %d, but version %d was committed since; start again", *base, s.version)}
	}
	dp, err := change(s.cfg)
	if err != nil {
		return 0, nil, err
	}
	next := Merge(s.cfg, dp)
	warnings, err := next.Validate()
	if err != nil {
		var ps config.Problems
		errors.As(err, &ps)
		return 0, nil, badRequest("invalid_config", "the configuration is invalid; nothing was changed", ps)
	}
	if err := s.opts.Plane.Apply(ctx, next); err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			return 0, nil, badRequest("invalid_config", "the configuration cannot be served; nothing was changed", ps)
		}
		return 0, nil, &apiError{Status: http.StatusUnprocessableEntity, Code: "apply_failed",
			Message: "the configuration could not be applied; nothing was changed", Problems: config.Problems{{Message: err.Error()}}, Err: err}
	}
	clean, err := Extract(next)
	if err != nil {
		return 0, nil, err
	}
	if err := saveState(s.opts.Control.StateDir, s.version+1, clean); err != nil {
		// Not persisted: go back to what is on disk, so a restart agrees.
		if rerr := s.opts.Plane.Apply(ctx, s.cfg); rerr != nil {
			s.log.Error("control API: could not restore the previous configuration", "err", rerr)
		}
		return 0, nil, fmt.Errorf("persisting the configuration: %w", err)
	}
	s.version++
	s.cfg = next
	return s.version, warnings, nil
}

func (s *Server) getCertificates(w http.ResponseWriter, _ *http.Request) error {
	leaf := s.cert.Load()
	writeJSON(w, http.StatusOK, map[string]any{
		"in_use":  s.opts.Plane.Certificates(),
		"control": CertInfo{Listener: "control", Ref: leaf.Ref, Names: leaf.Names, NotAfter: leaf.NotAfter, Fingerprint: leaf.Fingerprint(), KeyType: leaf.KeyType()},
	})
	return nil
}

var certName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// putCertificate stores an uploaded bundle (PEM, or PKCS#12 with
// Content-Type application/x-pkcs12 and an optional X-Passphrase header)
// in the state directory, validated, and returns the reference to use.
func (s *Server) putCertificate(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if !certName.MatchString(name) {
		return badRequest("invalid_name", "certificate names are 1-128 characters of A-Z a-z 0-9 . _ -", nil)
	}
	data, err := readBody(r)
	if err != nil {
		return err
	}
	var pass []byte
	if p := r.Header.Get("X-Passphrase"); p != "" {
		pass = []byte(p)
	}
	path := filepath.Join(s.opts.Control.StateDir, "certs", name+".pem")
	ref := "file://" + path
	b, err := certs.Parse(ref, data, pass)
	if err != nil {
		return badRequest("invalid_certificate", "the bundle is invalid: "+strings.TrimPrefix(err.Error(), "certificate ref "+ref+": "), nil)
	}
	normalized, err := bundlePEM(b)
	if err != nil {
		return err
	}
	if err := writeAtomic(path, normalized, 0o600); err != nil {
		return err
	}
	var warnings []string
	if err := b.CheckValidity(time.Now()); err != nil {
		warnings = append(warnings, err.Error())
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"ref": ref, "names": b.Names, "not_after": b.NotAfter, "sha256": b.Fingerprint(), "key_type": b.KeyType(), "warnings": warnings,
	})
	return nil
}

// putOwnCertificate rotates the control server's certificate.
func (s *Server) putOwnCertificate(w http.ResponseWriter, r *http.Request) error {
	data, err := readBody(r)
	if err != nil {
		return err
	}
	var pass []byte
	if p := r.Header.Get("X-Passphrase"); p != "" {
		pass = []byte(p)
	}
	b, err := s.install(data, pass)
	if err != nil {
		return badRequest("invalid_certificate", "the certificate was not installed: "+err.Error(), nil)
	}
	s.log.Info("control API: server certificate rotated", "subject", b.Leaf().Subject.String(), "not_after", b.NotAfter)
	writeJSON(w, http.StatusOK, map[string]any{"names": b.Names, "not_after": b.NotAfter, "sha256": b.Fingerprint()})
	return nil
}

// readBody reads a whole request body (at most maxBody bytes).
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, badRequest("body", fmt.Sprintf("the request body could not be read (over %d MiB?)", maxBody>>20), nil)
	}
	return body, nil
}

// decodeStrict decodes body as exactly one JSON object into v, refusing
// unknown fields, null, other JSON types and anything after the object.
func decodeStrict(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return badRequest("invalid_json", "the body must be one JSON object", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid_json", "the body is not valid JSON for this endpoint: "+err.Error(), nil)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid_json", fmt.Sprintf("the body must be one JSON object; more follows it at byte %d", dec.InputOffset()), nil)
	}
	return nil
}

func notFound(kind, name string) error {
	return &apiError{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no %s named %q", strings.TrimSuffix(kind, "s"), name)}
}

func findListener(ls []config.Listener, name string) int {
	return slices.IndexFunc(ls, func(l config.Listener) bool { return l.Key() == name || l.Name == name })
}

func findPool(ps []config.Pool, name string) int {
	return slices.IndexFunc(ps, func(p config.Pool) bool { return p.Key() == name || p.Name == name })
}

// putListener creates or replaces the listener called name.
func putListener(dp *DataPlane, name string, body []byte) error {
	var l config.Listener
	if err := decodeStrict(body, &l); err != nil {
		return err
	}
	if l.Name == "" && l.ID == "" {
		l.Name = name
	}
	if l.Key() != name && l.Name != name {
		return badRequest("name_mismatch", fmt.Sprintf("the body names listener %q, the path %q", l.Key(), name), nil)
	}
	if i := findListener(dp.Listeners, name); i >= 0 {
		dp.Listeners[i] = l
	} else {
		dp.Listeners = append(dp.Listeners, l)
	}
	return nil
}

func deleteListener(dp *DataPlane, name string, _ []byte) error {
	i := findListener(dp.Listeners, name)
	if i < 0 {
		return notFound("listeners", name)
	}
	dp.Listeners = slices.Delete(dp.Listeners, i, i+1)
	return nil
}

func putPool(dp *DataPlane, name string, body []byte) error {
	var p config.Pool
	if err := decodeStrict(body, &p); err != nil {
		return err
	}
	if p.Name == "" && p.ID == "" {
		p.Name = name
	}
	if p.Key() != name && p.Name != name {
		return badRequest("name_mismatch", fmt.Sprintf("the body names pool %q, the path %q", p.Key(), name), nil)
	}
	if i := findPool(dp.Pools, name); i >= 0 {
		dp.Pools[i] = p
	} else {
		dp.Pools = append(dp.Pools, p)
	}
	return nil
}

func deletePool(dp *DataPlane, name string, _ []byte) error {
	i := findPool(dp.Pools, name)
	if i < 0 {
		return notFound("pools", name)
	}
	dp.Pools = slices.Delete(dp.Pools, i, i+1)
	return nil
}

// putMembers replaces a pool's members, as Octavia's batch member update
// (PUT /v2/lbaas/pools/{id}/members with {"members": [...]}).
func putMembers(dp *DataPlane, name string, body []byte) error {
	var req struct {
		Members *[]config.Member `json:"members"`
	}
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	if req.Members == nil {
		return badRequest("invalid_json", `the body must give "members" (an empty list removes them all)`, nil)
	}
	i := findPool(dp.Pools, name)
	if i < 0 {
		return notFound("pools", name)
	}
	dp.Pools[i].Members = *req.Members
	return nil
}
