package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/terminator-proxy/terminator/sni"
)

// handshakeFailureReason classifies a handshake error for the
// terminator_tls_handshake_failures_total metric. The set of reasons is
// small and fixed, so the metric's cardinality stays bounded.
func handshakeFailureReason(err error) string {
	var alert tls.AlertError
	var recordHdr tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.Is(err, errNotAllowed):
		return "source_not_allowed"
	case errors.Is(err, errProxyHeader):
		return "proxy_header"
	case errors.Is(err, errConnectionLimit):
		return "connection_limit"
	case errors.Is(err, sni.ErrUnknownServerName):
		return "unknown_server_name"
	case sni.ClientCertReason(err) != "":
		return "client_certificate_" + sni.ClientCertReason(err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "shutdown"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "client_closed"
	case errors.As(err, &recordHdr):
		return "not_tls"
	case errors.As(err, &alert):
		return "client_alert"
	case strings.Contains(err.Error(), "no mutual") || strings.Contains(err.Error(), "unsupported versions") || strings.Contains(err.Error(), "no cipher suite") || strings.Contains(err.Error(), "no application protocol"):
		// crypto/tls has no typed errors for negotiation failures.
		return "negotiation"
	}
	return "other"
}
