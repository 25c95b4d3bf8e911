package heartbeat

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Version is the heartbeat message version: 3, statistics as deltas.
const Version = 3

// Message is one heartbeat.
type Message struct {
	ID        string                    `json:"id"`  // the amphora id
	Seq       int64                     `json:"seq"` // +1 per message, from 0
	Listeners map[string]ListenerStatus `json:"listeners"`
	Pools     map[string]PoolStatus     `json:"pools"` // keyed "<pool_id>:<listener_id>"
	Ver       int                       `json:"ver"`
}

// ListenerStatus is a listener's state ("OPEN", or "FULL" at its
// connection limit) and its statistics.
type ListenerStatus struct {
	Status string `json:"status"`
	Stats  Stats  `json:"stats"`
}

// Stats are one listener's counters: deltas since the last heartbeat,
// except Conns, the connections open now.
type Stats struct {
	TX       int64 `json:"tx"`       // bytes sent to clients
	RX       int64 `json:"rx"`       // bytes received from clients
	Conns    int64 `json:"conns"`    // open connections (absolute)
	TotConns int64 `json:"totconns"` // connections accepted
	EReq     int64 `json:"ereq"`     // request errors
}

// PoolStatus is a pool's state ("UP" or "DOWN") and its members' status
// strings as haproxy reports them: "UP", "DOWN", "DRAIN", "MAINT" or
// "no check".
type PoolStatus struct {
	Status  string            `json:"status"`
	Members map[string]string `json:"members"`
}

// Listener and pool states.
const (
	ListenerOpen = "OPEN"
	ListenerFull = "FULL"
	PoolUp       = "UP"
	PoolDown     = "DOWN"
)

// maxDatagram is the health manager's receive size (UDP_MAX_SIZE).
const maxDatagram = 64 << 10

// Wrap encodes m as the health manager expects: zlib-compressed JSON at
// level 9, then the lowercase hex HMAC-SHA256 of it under key.
func Wrap(m *Message, key string) ([]byte, error) {
	js, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, err := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(js); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(buf.Bytes())
	out := hex.AppendEncode(buf.Bytes(), mac.Sum(nil))
	if len(out) > maxDatagram {
		return nil, fmt.Errorf("heartbeat: %d bytes, over the health manager's %d", len(out), maxDatagram)
	}
	return out, nil
}

// Unwrap checks and decodes a datagram made by Wrap (for tests and
// diagnostics; the health manager has its own).
func Unwrap(datagram []byte, key string) (*Message, error) {
	if len(datagram) < 64 {
		return nil, errors.New("heartbeat: datagram too short")
	}
	payload, sum := datagram[:len(datagram)-64], datagram[len(datagram)-64:]
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(payload)
	if !hmac.Equal(hex.AppendEncode(nil, mac.Sum(nil)), sum) {
		return nil, errors.New("heartbeat: HMAC mismatch")
	}
	zr, err := zlib.NewReader(bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	js, err := io.ReadAll(io.LimitReader(zr, 16<<20))
	if err != nil {
		return nil, err
	}
	var m Message
	return &m, json.Unmarshal(js, &m)
}
