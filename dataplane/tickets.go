package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/terminator-proxy/terminator/config"
)

// loadTickets reads the shared session-ticket keys, if configured, through
// the file manager so that the file is watched like a certificate.
func (p *Plane) loadTickets(ctx context.Context, cfg *config.Config) ([][32]byte, error) {
	path := cfg.TLS.SessionTicketKeysFile
	if path == "" {
		return nil, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("tls.session_ticket_keys_file: %w", err)
	}
	data, err := p.opts.Certs.Secret(ctx, "file://"+abs)
	if err != nil {
		return nil, fmt.Errorf("tls.session_ticket_keys_file: %w", err)
	}
	keys, err := ParseTicketKeys(data)
	if err != nil {
		return nil, fmt.Errorf("tls.session_ticket_keys_file %s: %w", path, err)
	}
	return keys, nil
}

// TicketKeysRef is the reference under which the ticket-key file is read
// and watched.
func TicketKeysRef(cfg *config.Config) string {
	if cfg.TLS.SessionTicketKeysFile == "" {
		return ""
	}
	abs, err := filepath.Abs(cfg.TLS.SessionTicketKeysFile)
	if err != nil {
		return ""
	}
	return "file://" + abs
}

// ParseTicketKeys reads session-ticket keys: one base64-encoded 32-byte key
// a line, blank lines and # comments ignored. The first key encrypts new
// tickets; every key decrypts, so rotation is "prepend a new key, drop the
// oldest".
func ParseTicketKeys(data []byte) ([][32]byte, error) {
	var keys [][32]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("line %d: want a base64-encoded 32-byte key", n)
		}
		var k [32]byte
		copy(k[:], raw)
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no keys")
	}
	return keys, nil
}
