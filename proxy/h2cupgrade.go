package proxy

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/terminator-proxy/terminator/proxy/h2server"

	"github.com/terminator-proxy/terminator/proxy/httpwire"
)

// maxH2CSettings bounds the HTTP2-Settings header: six bytes per setting,
// and RFC 9113 defines six settings (a few more leave room for extensions).
const maxH2CSettings = 6 * 16

// h2cUpgradeSettings reports whether r asks to switch to HTTP/2 the way
// RFC 7540 §3.2 describes (Upgrade: h2c with one HTTP2-Settings header,
// both named in Connection) and returns the decoded settings. Only a
// request without a body is upgraded; others are answered over HTTP/1.1,
// which a server may always do.
func h2cUpgradeSettings(r *http.Request, body *h1body) ([]byte, bool) {
	if r.ProtoMinor != 1 || !body.done || !httpwire.HasToken(r.Header, "Upgrade", "h2c") ||
		!httpwire.HasToken(r.Header, "Connection", "upgrade") || !httpwire.HasToken(r.Header, "Connection", "http2-settings") {
		return nil, false
	}
	vals := r.Header["Http2-Settings"]
	if len(vals) != 1 || len(vals[0]) > base64.RawURLEncoding.EncodedLen(maxH2CSettings) {
		return nil, false
	}
	settings, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(vals[0], "="))
	if err != nil || len(settings)%6 != 0 {
		return nil, false
	}
	return settings, true
}

// upgradeH2C answers r with 101 and hands the connection to the HTTP/2
// server, r becoming stream 1 (RFC 7540 §3.2; RFC 9113 dropped the
// mechanism, but curl --http2 and older clients still use it). It reports
// whether the connection was handed over.
func (hc *h1conn) upgradeH2C(r *http.Request, settings []byte) bool {
	for _, h := range []string{"Upgrade", "Connection", "Http2-Settings", "Keep-Alive", "Proxy-Connection"} {
		r.Header.Del(h)
	}
	if _, err := io.WriteString(hc.c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"); err != nil {
		return false
	}
	buffered, _ := hc.br.Peek(hc.br.Buffered())
	c := &replayConn{Conn: hc.c, r: io.MultiReader(bytes.NewReader(append([]byte(nil), buffered...)), hc.c)}
	_ = hc.c.SetReadDeadline(time.Time{}) // the HTTP/2 server keeps its own
	hc.l.startH2(c, hc.ci, &h2server.Upgrade{Request: r, Settings: settings})
	return true
}
