// Package accesslog writes one line per request to a file (reopened on
// demand, for logrotate), to syslog or to standard error, as text, JSON,
// or in haproxy's log-format syntax, which Octavia's user_log_format uses.
// Every line is written with one write, whole, under a lock, so
// concurrent requests never split or interleave lines, and none is lost
// across a reopen.
package accesslog

import (
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"strings"
	"sync"
	"time"
)

// Entry is what is known of a finished request.
type Entry struct {
	Time                    time.Time // when it started
	Listener, Pool          string
	Member                  string // host:port, or "-"
	ClientIP                string
	ClientPort              int
	Method, Host, URI       string
	Proto                   string
	Status                  int
	BytesIn, BytesOut       int64
	Duration                time.Duration
	RequestID               string
	ClientVerify            string // ssl_c_verify: "0" when verified, "" without a client certificate
	ClientDN                string
	TerminationState        string // haproxy's %tsc: "--" for a normal end
	ProjectID, LoadBalancer string
}

// Options choose where and how lines go.
type Options struct {
	// Output is "stderr" (default), "file" or "syslog".
	Output string
	// Path is the file for "file".
	Path string
	// SyslogAddress is "udp://host:port", "tcp://host:port" or
	// "unix:///dev/log" for "syslog"; Tag defaults to "terminator".
	SyslogAddress, Tag string
	// Format is "text" (default), "json", "httplog" (Octavia's default
	// user_log_format) or a haproxy log-format string.
	Format string
}

// Logger writes entries. It is safe for concurrent use.
type Logger struct {
	format func([]byte, *Entry) []byte
	mu     sync.Mutex // guards w and buf
	w      io.Writer
	file   *os.File // when Output is "file"
	path   string
	buf    []byte
	closer io.Closer
}

// Open returns a Logger for o.
func Open(o Options) (*Logger, error) {
	f, err := formatter(o.Format)
	if err != nil {
		return nil, err
	}
	l := &Logger{format: f, path: o.Path}
	switch o.Output {
	case "", "stderr":
		l.w = os.Stderr
	case "file":
		if o.Path == "" {
			return nil, errors.New("accesslog: output file needs a path")
		}
		if err := l.openFile(); err != nil {
			return nil, err
		}
	case "syslog":
		network, addr, ok := strings.Cut(o.SyslogAddress, "://")
		if !ok {
			return nil, fmt.Errorf("accesslog: syslog address %q is not udp://, tcp:// or unix://", o.SyslogAddress)
		}
		tag := o.Tag
		if tag == "" {
			tag = "terminator"
		}
		if network == "unix" {
			network = "unixgram"
		}
		w, err := syslog.Dial(network, addr, syslog.LOG_INFO|syslog.LOG_LOCAL0, tag)
		if err != nil {
			return nil, fmt.Errorf("accesslog: syslog %s: %w", o.SyslogAddress, err)
		}
		l.w, l.closer = w, w
	default:
		return nil, fmt.Errorf("accesslog: unknown output %q (stderr, file or syslog)", o.Output)
	}
	return l, nil
}

func (l *Logger) openFile() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("accesslog: %w", err)
	}
	l.file, l.w, l.closer = f, f, f
	return nil
}

// Log writes e as one line.
func (l *Logger) Log(e *Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.format(l.buf[:0], e), '\n')
	_, _ = l.w.Write(l.buf) // a full disk must not stop serving
}

// Reopen closes and opens the file again (after logrotate renamed it); a
// line being written finishes in the old file first. Other outputs
// ignore it.
func (l *Logger) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	old := l.file
	if err := l.openFile(); err != nil {
		return err // keep writing to the old one
	}
	return old.Close()
}

// Close closes the file or syslog connection.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closer == nil {
		return nil
	}
	return l.closer.Close()
}
