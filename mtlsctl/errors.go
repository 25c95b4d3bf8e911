package mtlsctl

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/terminator-proxy/terminator/config"
)

// apiError is an error with what the client may see kept apart from the
// cause, which only the log gets.
type apiError struct {
	Status   int
	Code     string // stable, machine-readable
	Message  string // for the client
	Problems config.Problems
	Err      error // for the log
}

func (e *apiError) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *apiError) Unwrap() error { return e.Err }

func badRequest(code, msg string, problems config.Problems) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Message: msg, Problems: problems}
}

// errorBody is the stable JSON shape of every error response.
type errorBody struct {
	Error struct {
		Status   int             `json:"status"`
		Code     string          `json:"code"`
		Message  string          `json:"message"`
		Problems config.Problems `json:"problems,omitempty"`
	} `json:"error"`
}

// writeError turns err into a response. Errors that are not *apiError are
// internal: the client learns only that, the log gets the detail.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) int {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; see terminator's log", Err: err}
	}
	if ae.Status >= 500 {
		log.Error("control API error", "code", ae.Code, "err", ae)
	}
	var body errorBody
	body.Error.Status, body.Error.Code, body.Error.Message, body.Error.Problems = ae.Status, ae.Code, ae.Message, ae.Problems
	writeJSON(w, ae.Status, body)
	return ae.Status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
