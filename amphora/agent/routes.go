package agent

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
)

// maxUpload bounds a request body (configurations and certificates).
const maxUpload = 16 << 20

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"api_version": "1.0"})
	})
	mux.HandleFunc("GET /1.0/info", s.info)
	mux.HandleFunc("GET /1.0/details", s.details)
	// PUT …/<amphora_id>/<lb_id>/haproxy and PUT …/<lb_id>/certificates/<file>
	// share a shape: the middle segment tells them apart.
	mux.HandleFunc("PUT /1.0/loadbalancer/{a}/{b}/{c}", func(w http.ResponseWriter, r *http.Request) {
		a, b, c := r.PathValue("a"), r.PathValue("b"), r.PathValue("c")
		switch {
		case b == "certificates":
			r.SetPathValue("lb", a)
			r.SetPathValue("file", c)
			s.putCert(w, r)
		case c == "haproxy":
			r.SetPathValue("amphora", a)
			r.SetPathValue("lb", b)
			s.putHAProxy(w, r)
		default:
			writeJSON(w, http.StatusNotFound, map[string]any{"error": "404 Not Found: The requested URL was not found on the server.", "http_code": http.StatusNotFound})
		}
	})
	mux.HandleFunc("GET /1.0/loadbalancer/{lb}/haproxy", s.getHAProxy)
	mux.HandleFunc("PUT /1.0/loadbalancer/{lb}/{action}", s.action)
	mux.HandleFunc("DELETE /1.0/listeners/{lb}", s.deleteLB)
	mux.HandleFunc("GET /1.0/listeners", s.listListeners)
	mux.HandleFunc("PUT /1.0/listeners/{amphora}/{listener}/udp_listener", s.putLVS)
	mux.HandleFunc("GET /1.0/listeners/{listener}/udp_listener", s.getLVS)
	mux.HandleFunc("GET /1.0/loadbalancer/{lb}/certificates/{file}", s.getCertMD5)
	mux.HandleFunc("DELETE /1.0/loadbalancer/{lb}/certificates/{file}", s.deleteCert)
	mux.HandleFunc("PUT /1.0/certificate", s.putOwnCert)
	mux.HandleFunc("PUT /1.0/config", s.putConfig)
	notPlugged := func(what string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxUpload))
			writeJSON(w, http.StatusAccepted, map[string]any{"message": "OK",
				"details": what + ": terminator agent does not configure this part of the amphora's network; nothing was changed"})
		}
	}
	if s.opts.Net != nil {
		mux.HandleFunc("POST /1.0/plug/vip/{vip}", s.plugVIP)
		mux.HandleFunc("POST /1.0/plug/network", s.plugNetwork)
		mux.HandleFunc("GET /1.0/interface/{ip}", s.getInterface)
		mux.HandleFunc("PUT /1.0/interface/{ip}/rules", s.putRules)
	} else {
		mux.HandleFunc("PUT /1.0/interface/{ip}/rules", notPlugged("VIP interface rules"))
		mux.HandleFunc("POST /1.0/plug/vip/{vip}", notPlugged("VIP plugging"))
		mux.HandleFunc("POST /1.0/plug/network", notPlugged("network plugging"))
	}
	mux.HandleFunc("PUT /1.0/vrrp/upload", s.putVRRP)
	mux.HandleFunc("PUT /1.0/vrrp/{action}", s.vrrpAction)
	return s.werkzeugErrors(mux)
}

// werkzeugErrors answers unknown paths (404) and methods (405) with the
// JSON body the agent's Flask app gives, {"error", "http_code"}: the
// controller retries a 404 that is not JSON as "agent not ready".
func (s *Server) werkzeugErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			code, text := http.StatusNotFound, "404 Not Found: The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."
			r2 := *r
			for _, m := range []string{"GET", "PUT", "POST", "DELETE"} {
				r2.Method = m
				if _, p := mux.Handler(&r2); p != "" {
					code, text = http.StatusMethodNotAllowed, "405 Method Not Allowed: The method is not allowed for the requested URL."
					break
				}
			}
			writeJSON(w, code, map[string]any{"error": text, "http_code": code})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// message answers as the agent's handlers do: {"message", "details"}.
func message(w http.ResponseWriter, code int, msg, details string) {
	body := map[string]any{"message": msg}
	if details != "" {
		body["details"] = details
	}
	writeJSON(w, code, body)
}

func md5hex(b []byte) string {
	sum := md5.Sum(b) // Octavia's ETag and md5sum; not for security
	return hex.EncodeToString(sum[:])
}

// Octavia names load balancers, amphorae and listeners by UUID; the
// strict form keeps every path inside base_path and base_cert_dir.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// certFilename is Octavia's rule ("(\w.)+pem": <sha1>.pem,
// <listener_id>.pem), made strict: no separators, no "..".
var certFilename = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*\.pem$`)

func validID(w http.ResponseWriter, what, id string) bool {
	if !idPattern.MatchString(id) {
		message(w, http.StatusBadRequest, "Invalid request", fmt.Sprintf("%s %q is not an id", what, id))
		return false
	}
	return true
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUpload))
	if err != nil {
		message(w, http.StatusBadRequest, "Invalid request", fmt.Sprintf("the body could not be read (over %d MiB?)", maxUpload>>20))
		return nil, false
	}
	return data, true
}
