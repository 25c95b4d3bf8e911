package agent

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/terminator-proxy/terminator/amphora/netplug"
)

// decodeNet reads a plug body as the agent's Flask handlers do: a JSON
// object with every key of required present, else werkzeug's 400 with
// refusal (e.g. "Invalid subnet information").
func decodeNet(w http.ResponseWriter, r *http.Request, refusal string, into any, required ...string) bool {
	body, ok := readBody(w, r)
	if !ok {
		return false
	}
	var raw map[string]json.RawMessage
	err := json.Unmarshal(body, &raw)
	for _, k := range required {
		if _, ok := raw[k]; err == nil && !ok {
			err = errors.New("missing " + k)
		}
	}
	if err == nil {
		err = json.Unmarshal(body, into)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "400 Bad Request: " + refusal + " (" + err.Error() + ")", "http_code": http.StatusBadRequest})
		return false
	}
	return true
}

// plugError answers a netplug refusal with Octavia's status and body, and
// anything else as the failure it is.
func (s *Server) plugError(w http.ResponseWriter, what string, err error) {
	var pe *netplug.Error
	switch {
	case errors.As(err, &pe) && pe.Message == "":
		writeJSON(w, pe.Status, map[string]any{"details": pe.Details})
	case errors.As(err, &pe):
		message(w, pe.Status, pe.Message, pe.Details)
	default:
		s.log.Error(what, "err", err)
		message(w, http.StatusInternalServerError, "Error "+what, err.Error())
	}
}

func (s *Server) plugVIP(w http.ResponseWriter, r *http.Request) {
	var n netplug.VIPNet
	if !decodeNet(w, r, "Invalid subnet information", &n, "subnet_cidr", "gateway", "mac_address") {
		return
	}
	details, err := s.opts.Net.PlugVIP(r.PathValue("vip"), &n)
	if err != nil {
		s.plugError(w, "plugging the VIP", err)
		return
	}
	s.log.Info("VIP plugged", "details", details)
	message(w, http.StatusAccepted, "OK", details)
}

func (s *Server) plugNetwork(w http.ResponseWriter, r *http.Request) {
	var p netplug.Port
	if !decodeNet(w, r, "Invalid port information", &p, "mac_address") {
		return
	}
	details, err := s.opts.Net.PlugNetwork(&p)
	if err != nil {
		s.plugError(w, "plugging the network", err)
		return
	}
	s.log.Info("network plugged", "details", details)
	message(w, http.StatusAccepted, "OK", details)
}

func (s *Server) getInterface(w http.ResponseWriter, r *http.Request) {
	name, err := s.opts.Net.InterfaceOf(r.PathValue("ip"))
	if err != nil {
		s.plugError(w, "finding the interface", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"message": "OK", "interface": name})
}

func (s *Server) putRules(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	rules, err := netplug.ParseRules(body)
	if err != nil {
		s.plugError(w, "loading the VIP interface rules", err)
		return
	}
	iface, err := s.opts.Net.SetRules(r.PathValue("ip"), rules)
	if err != nil {
		s.plugError(w, "loading the VIP interface rules", err)
		return
	}
	s.log.Info("VIP interface rules loaded", "interface", iface, "rules", len(rules))
	message(w, http.StatusOK, "OK", "")
}
