package agent

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"strings"
)

// putLVS answers PUT /1.0/listeners/<amphora>/<listener>/udp_listener, the
// keepalived LVS configuration Octavia renders for UDP and SCTP
// listeners. terminator serves neither yet, so it refuses with a 400 that
// names the protocol and the reason; the controller then puts the
// listener in ERROR instead of believing it serves.
func (s *Server) putLVS(w http.ResponseWriter, r *http.Request) {
	if !validID(w, "amphora", r.PathValue("amphora")) || !validID(w, "listener", r.PathValue("listener")) {
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	switch lvsProtocol(body) {
	case "SCTP":
		message(w, http.StatusBadRequest, "Invalid request", fmt.Sprintf(
			"listener %s: SCTP listeners are not supported by terminator: it has no SCTP data path (this kernel's IPVS is not used)", r.PathValue("listener")))
	case "UDP":
		message(w, http.StatusBadRequest, "Invalid request", fmt.Sprintf(
			"listener %s: UDP listeners are not served by terminator agent yet; nothing was applied", r.PathValue("listener")))
	default:
		message(w, http.StatusBadRequest, "Invalid request", fmt.Sprintf(
			"listener %s: no virtual_server protocol line (UDP or SCTP) in the keepalived configuration", r.PathValue("listener")))
	}
}

// getLVS answers GET /1.0/listeners/<listener>/udp_listener: none exist.
func (s *Server) getLVS(w http.ResponseWriter, r *http.Request) {
	message(w, http.StatusNotFound, "UDP Listener Not Found", fmt.Sprintf("No UDP listener with UUID: %s", r.PathValue("listener")))
}

// lvsProtocol is the protocol of the first virtual_server, or "".
func lvsProtocol(cfg []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cfg))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "protocol" {
			return strings.ToUpper(f[1])
		}
	}
	return ""
}
