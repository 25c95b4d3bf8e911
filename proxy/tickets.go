package proxy

import (
	"crypto/tls"
	"encoding/binary"
	"time"
)

// ticketStamp marks the Extra entry that records when a session's ticket
// was first issued.
const ticketStamp = "terminator-issued:"

// boundTickets makes cfg's session tickets resume sessions for at most
// lifetime from the full handshake that created them (haproxy's
// tune.ssl.lifetime, 300 s by default; crypto/tls alone allows 7 days).
// Tickets are sealed with the listener's keys (l.base), the shared
// session_ticket_keys_file ones when configured, so resumption still works
// across reloads and instances.
func (l *Listener) boundTickets(cfg *tls.Config, lifetime time.Duration) {
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		if _, ok := issuedAt(ss); !ok { // a resumed session keeps its first stamp
			stamp := make([]byte, len(ticketStamp)+8)
			copy(stamp, ticketStamp)
			binary.BigEndian.PutUint64(stamp[len(ticketStamp):], uint64(time.Now().UnixMilli()))
			ss.Extra = append(ss.Extra, stamp)
		}
		return l.base.EncryptTicket(cs, ss)
	}
	cfg.UnwrapSession = func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := l.base.DecryptTicket(identity, cs)
		if err != nil || ss == nil {
			return nil, err
		}
		if at, ok := issuedAt(ss); !ok || time.Since(at) > lifetime {
			return nil, nil // a full handshake instead
		}
		return ss, nil
	}
}

// issuedAt reads the stamp WrapSession put in a session.
func issuedAt(ss *tls.SessionState) (time.Time, bool) {
	for _, e := range ss.Extra {
		if len(e) == len(ticketStamp)+8 && string(e[:len(ticketStamp)]) == ticketStamp {
			return time.UnixMilli(int64(binary.BigEndian.Uint64(e[len(ticketStamp):]))), true
		}
	}
	return time.Time{}, false
}
