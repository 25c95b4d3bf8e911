package lb

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"

	"github.com/terminator-proxy/terminator/proxy/httpwire"
)

// Session persistence modes, as Octavia names them.
const (
	PersistSourceIP   = "SOURCE_IP"
	PersistHTTPCookie = "HTTP_COOKIE"
	PersistAppCookie  = "APP_COOKIE"
)

// persistCookie is the cookie terminator inserts for HTTP_COOKIE, as
// Octavia's haproxy configuration does ("cookie SRV insert indirect nocache").
const persistCookie = "SRV"

// stickTableSize bounds a pool's stick table, as haproxy_stick_size (10k).
const stickTableSize = 10240

// stickTable maps a persistence key (client address, application cookie)
// to a member address. It lives in States, so a reload keeps it.
type stickTable struct {
	mu     sync.Mutex // guards m
	m      map[string]string
	pool   string
	states *States // for its OnStick; nil for a table outside States
}

func (t *stickTable) get(k string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[k]
	return v, ok
}

func (t *stickTable) put(k, addr string) {
	if t.learn(k, addr) && t.states != nil {
		if f := t.states.onStick.Load(); f != nil {
			(*f)(t.pool, k, addr)
		}
	}
}

// learn records k -> addr and reports whether that changed the table.
func (t *stickTable) learn(k, addr string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, ok := t.m[k]
	if ok && old == addr {
		return false
	}
	if !ok && len(t.m) >= stickTableSize {
		for old := range t.m { // evict an arbitrary entry
			delete(t.m, old)
			break
		}
	}
	t.m[k] = addr
	return true
}

// OnStick sets the function told of every change the proxy makes to a
// persistence table (pool, key, member address): the peers share them.
// Changes made by Learn are not told.
func (s *States) OnStick(f func(pool, key, addr string)) { s.onStick.Store(&f) }

// Learn records a persistence entry a peer made.
func (s *States) Learn(pool, key, addr string) { s.table(pool).learn(key, addr) }

// StickEntry is one persistence-table entry.
type StickEntry struct{ Pool, Key, Addr string }

// StickEntries lists every persistence entry, for a peer that connects.
func (s *States) StickEntries() []StickEntry {
	s.mu.Lock()
	tables := make(map[string]*stickTable, len(s.tables))
	for pool, t := range s.tables {
		tables[pool] = t
	}
	s.mu.Unlock()
	var out []StickEntry
	for pool, t := range tables {
		t.mu.Lock()
		for k, v := range t.m {
			out = append(out, StickEntry{pool, k, v})
		}
		t.mu.Unlock()
	}
	return out
}

// table returns the pool's stick table, created on first use.
func (s *States) table(pool string) *stickTable {
	if s == nil {
		return &stickTable{m: map[string]string{}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tables == nil {
		s.tables = map[string]*stickTable{}
	}
	t, ok := s.tables[pool]
	if !ok {
		t = &stickTable{m: map[string]string{}, pool: pool, states: s}
		s.tables[pool] = t
	}
	return t
}

// memberCookie is the HTTP_COOKIE value for a member: its id, or a short
// hash of its address (stable across reloads and instances).
func memberCookie(id, addr string) string {
	if id != "" {
		return id
	}
	sum := sha256.Sum256([]byte(addr))
	return hex.EncodeToString(sum[:8])
}

// Select returns the member for r: the persisted one while it can take
// traffic, else the algorithm's choice (remembered for SOURCE_IP).
func (p *Pool) Select(r *http.Request, client string) *Member {
	switch p.persistence {
	case PersistSourceIP:
		if addr, ok := p.table.get(client); ok {
			if m := p.byAddr[addr]; m.available() {
				return m
			}
		}
		m := p.Next(client)
		if m != nil {
			p.table.put(client, m.Addr)
		}
		return m
	case PersistHTTPCookie:
		if v, ok := requestCookie(r, persistCookie); ok {
			if m := p.byCookie[v]; m.available() {
				return m
			}
		}
	case PersistAppCookie:
		if v, ok := requestCookie(r, p.cookieName); ok {
			if addr, ok := p.table.get(v); ok {
				if m := p.byAddr[addr]; m.available() {
					return m
				}
			}
		}
	}
	return p.Next(client)
}

// PersistResponse applies persistence to a member's response: HTTP_COOKIE
// inserts terminator's cookie unless the client already sent it (indirect)
// and marks the response private (nocache); APP_COOKIE learns the
// application's cookie value.
func (p *Pool) PersistResponse(h http.Header, req *http.Request, m *Member) {
	switch p.persistence {
	case PersistHTTPCookie:
		if v, ok := requestCookie(req, persistCookie); ok && v == m.cookie {
			return
		}
		h.Add("Set-Cookie", persistCookie+"="+m.cookie+"; Path=/")
		if h.Get("Cache-Control") == "" {
			h.Set("Cache-Control", "private")
		}
	case PersistAppCookie:
		for _, c := range (&http.Response{Header: h}).Cookies() {
			if c.Name == p.cookieName && c.Value != "" {
				p.table.put(c.Value, m.Addr)
			}
		}
	}
}

// StripPersistCookie removes terminator's own cookie from the request
// forwarded to the member ("indirect": the application never sees it).
func StripPersistCookie(h http.Header) {
	lines := h["Cookie"]
	if len(lines) == 0 {
		return
	}
	out := lines[:0:0]
	for _, line := range lines {
		var kept []string
		for _, part := range strings.Split(line, ";") {
			if k, _, _ := strings.Cut(strings.TrimSpace(part), "="); k != persistCookie {
				kept = append(kept, strings.TrimSpace(part))
			}
		}
		if len(kept) > 0 {
			out = append(out, strings.Join(kept, "; "))
		}
	}
	if len(out) == 0 {
		delete(h, "Cookie")
		return
	}
	h["Cookie"] = out
}

func requestCookie(r *http.Request, name string) (string, bool) {
	if r == nil {
		return "", false
	}
	for _, line := range r.Header["Cookie"] {
		if v, ok := httpwire.CookieValue(line, name); ok {
			return v, true
		}
	}
	return "", false
}
