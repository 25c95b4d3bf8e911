package mtlsctl

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/terminator-proxy/terminator/config"
)

// A txn stages edits on a copy of the configuration taken at version base;
// commit applies them all or none, and only if nothing was committed since.
type txn struct {
	base    uint64
	dp      *DataPlane
	expires time.Time
}

const (
	maxTxns = 64
	txnTTL  = 10 * time.Minute
)

func (s *Server) beginTxn(w http.ResponseWriter, _ *http.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for id, t := range s.txns {
		if now.After(t.expires) {
			delete(s.txns, id)
		}
	}
	if len(s.txns) >= maxTxns {
		return &apiError{Status: http.StatusTooManyRequests, Code: "too_many_transactions", Message: "too many open transactions; commit or abort some"}
	}
	dp, err := Extract(s.cfg)
	if err != nil {
		return err
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	s.txns[id] = &txn{base: s.version, dp: dp, expires: now.Add(txnTTL)}
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "base_version": s.version, "expires": now.Add(txnTTL)})
	return nil
}

func (s *Server) takeTxn(id string) (*txn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openTxn(id)
}

// openTxn returns the open transaction id; s.mu must be held.
func (s *Server) openTxn(id string) (*txn, error) {
	t, ok := s.txns[id]
	if !ok || time.Now().After(t.expires) {
		delete(s.txns, id)
		return nil, &apiError{Status: http.StatusNotFound, Code: "no_transaction", Message: "no such transaction (committed, aborted or expired)"}
	}
	return t, nil
}

func (s *Server) getTxn(w http.ResponseWriter, r *http.Request) error {
	t, err := s.takeTxn(r.PathValue("id"))
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"base_version": t.base, "config": t.dp})
	return nil
}

func (s *Server) abortTxn(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.takeTxn(r.PathValue("id")); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.txns, r.PathValue("id"))
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// staged applies an edit to a transaction's copy; nothing is validated
// until commit, which validates all edits together.
func (s *Server) staged(e edit) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		t, err := s.openTxn(r.PathValue("id"))
		if err != nil {
			return err
		}
		// Edit a copy: a failed edit leaves the transaction as it was.
		dp, err := cloneDataPlane(t.dp)
		if err != nil {
			return err
		}
		if err := e(dp, r.PathValue("name"), body); err != nil {
			return err
		}
		t.dp = dp
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// commitTxn commits a transaction's edits. The transaction is closed in
// the same critical section as the commit, so no staged edit can reach
// it afterwards, and the committed config gets its own copy.
func (s *Server) commitTxn(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	t, err := s.takeTxn(id)
	if err != nil {
		return err
	}
	v, warnings, err := s.commit(r.Context(), r.Header.Get("If-Match"), &t.base, func(*config.Config) (*DataPlane, error) {
		if _, err := s.openTxn(id); err != nil {
			return nil, err
		}
		delete(s.txns, id) // closed before the lock is released
		return cloneDataPlane(t.dp)
	})
	s.mu.Lock()
	delete(s.txns, id) // committed or failed: either way it is over
	s.mu.Unlock()
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(v))
	writeJSON(w, http.StatusOK, map[string]any{"version": v, "warnings": warnings})
	return nil
}

// cloneDataPlane returns a deep copy of dp.
func cloneDataPlane(dp *DataPlane) (*DataPlane, error) {
	data, err := json.Marshal(dp)
	if err != nil {
		return nil, err
	}
	var out DataPlane
	return &out, json.Unmarshal(data, &out)
}
