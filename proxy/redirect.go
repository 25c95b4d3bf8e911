package proxy

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// redirect answers r with code and the Location redirectTarget gives; a
// request without a host to keep is refused.
func redirect(w http.ResponseWriter, prefix string, code int, r *http.Request) {
	target, ok := redirectTarget(prefix, r)
	if !ok {
		writeError(w, http.StatusBadRequest, "the request has no Host to redirect to")
		return
	}
	w.Header().Set("Location", target)
	w.WriteHeader(code)
}

// redirectTarget is where a redirect with prefix sends r: the prefix, then
// the request's path and query. A prefix without a host ("https://", or
// "https://:8443" with a port) keeps the request's host, so that one rule
// sends every site of an HTTP listener to its HTTPS twin; the port is
// left out when it is the scheme's default. It reports false when the
// host is to be kept and the request has none.
func redirectTarget(prefix string, r *http.Request) (string, bool) {
	u, err := url.Parse(prefix)
	if err != nil || (u.Host != "" && !strings.HasPrefix(u.Host, ":")) {
		return strings.TrimSuffix(prefix, "/") + r.URL.RequestURI(), true
	}
	host := r.Host
	if host == "" {
		return "", false
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	port := strings.TrimPrefix(u.Host, ":")
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6
	}
	return u.Scheme + "://" + host + strings.TrimSuffix(u.Path, "/") + r.URL.RequestURI(), true
}
