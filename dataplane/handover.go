package dataplane

import (
	"crypto/rand"
	"fmt"
	"os"
	"time"

	"github.com/terminator-proxy/terminator/proxy/lb"
)

// Handover is what a Plane hands to the process that replaces it in a
// binary upgrade: the session-ticket keys it made itself (a configured
// tls.session_ticket_keys_file is read again by the successor), and the
// member health and persistence tables.
type Handover struct {
	TicketKeys [][32]byte      `json:"ticket_keys,omitempty"`
	States     lb.StatesRecord `json:"states"`
}

// autoTicketRotation is how often the Plane's own ticket keys rotate when
// no key file is configured; the previous keys keep decrypting for the
// session-ticket lifetime (crypto/tls's own keys rotate daily, too).
const autoTicketRotation = 24 * time.Hour

// maxAutoTicketKeys bounds the keys kept for decryption.
const maxAutoTicketKeys = 8

// Handover returns the Plane's state for a successor process.
func (p *Plane) Handover() Handover {
	p.mu.Lock()
	keys := append([][32]byte(nil), p.autoTickets...)
	p.mu.Unlock()
	return Handover{TicketKeys: keys, States: p.states.Export()}
}

// ListenerFiles returns duplicates of every listening socket, named
// "tcp <bind>" or "udp <bind>" by the bind address the configuration
// names; the caller closes them.
func (p *Plane) ListenerFiles() (map[string]*os.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]*os.File{}
	fail := func(name string, err error) (map[string]*os.File, error) {
		for _, f := range out {
			f.Close()
		}
		return nil, fmt.Errorf("listener %s: %w", name, err)
	}
	for bind, l := range p.listeners {
		f, err := l.File()
		if err != nil {
			return fail(bind, err)
		}
		out["tcp "+bind] = f
	}
	for bind, r := range p.relays {
		f, err := r.File()
		if err != nil {
			return fail(bind, err)
		}
		out["udp "+bind] = f
	}
	return out, nil
}

// Adopt takes over the Handover of the process this one replaces (a binary
// upgrade): its ticket keys, member health and persistence tables. Call it
// before the first Apply.
func (p *Plane) Adopt(h Handover) error {
	if len(h.TicketKeys) > maxAutoTicketKeys {
		return fmt.Errorf("dataplane: handover carries %d ticket keys, at most %d", len(h.TicketKeys), maxAutoTicketKeys)
	}
	if err := p.states.Import(h.States); err != nil {
		return err
	}
	if len(h.TicketKeys) > 0 {
		p.mu.Lock()
		p.autoTickets = append([][32]byte(nil), h.TicketKeys...)
		p.mu.Unlock()
	}
	return nil
}

// rotateAutoTickets prepends a fresh key to the Plane's own ticket keys,
// keeping enough old ones to decrypt tickets for lifetime, and installs
// them where no key file is configured.
func (p *Plane) rotateAutoTickets(lifetime time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := min(int(lifetime/autoTicketRotation)+2, maxAutoTicketKeys)
	p.autoTickets = append([][32]byte{newTicketKey()}, p.autoTickets...)
	if len(p.autoTickets) > keep {
		p.autoTickets = p.autoTickets[:keep]
	}
	if p.tickets != nil || p.closed {
		return // a configured key file wins
	}
	for _, l := range p.listeners {
		l.SetSessionTicketKeys(p.autoTickets)
	}
}

func newTicketKey() [32]byte {
	var k [32]byte
	_, _ = rand.Read(k[:]) // crypto/rand.Read never fails (Go 1.24+)
	return k
}
