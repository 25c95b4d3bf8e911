package accesslog

import (
	"bufio"
	"fmt"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func sample() *Entry {
	return &Entry{Time: time.Date(2026, 11, 28, 10, 6, 4, 123e6, time.UTC), Listener: "web", Pool: "app", Member: "10.0.0.5:80",
		ClientIP: "192.0.2.7", ClientPort: 51234, Method: "GET", Host: "shop.example", URI: "/a?b=c", Proto: "HTTP/1.1",
		Status: 200, BytesIn: 12, BytesOut: 345, Duration: 1500 * time.Microsecond, RequestID: "abc123", TerminationState: "--",
		ProjectID: "proj", LoadBalancer: "lb1"}
}

func line(t *testing.T, format string, e *Entry) string {
	t.Helper()
	f, err := formatter(format)
	if err != nil {
		t.Fatal(err)
	}
	return string(f(nil, e))
}

// TestFormats: text, JSON and Octavia's default user_log_format (haproxy
// log-format syntax), exactly; values cannot forge a line.
func TestFormats(t *testing.T) {
	for format, want := range map[string]string{
		"text": `time=2026-11-28T10:06:04.123Z listener=web client=192.0.2.7 method=GET host=shop.example uri="/a?b=c" proto=HTTP/1.1 status=200 bytes_in=12 bytes_out=345 pool=app member=10.0.0.5:80 duration_ms=1.500 request_id=abc123`,
		"json": `{"time":"2026-11-28T10:06:04.123Z","listener":"web","client":"192.0.2.7","method":"GET","host":"shop.example","uri":"/a?b=c","proto":"HTTP/1.1","status":200,"bytes_in":12,"bytes_out":345,"pool":"app","member":"10.0.0.5:80","duration_ms":1.5,"request_id":"abc123"}`,
		// Octavia's default, as haproxy would write it for the same request.
		"httplog":              `proj lb1 web 192.0.2.7 51234 [28/Nov/2026:10:06:04.123] "GET /a?b=c HTTP/1.1" 200 345 12 0 "" app 10.0.0.5:80 1 --`,
		"%ci:%cp %ST %ID %%ok": `192.0.2.7:51234 200 abc123 %ok`,
	} {
		if got := line(t, format, sample()); got != want {
			t.Errorf("%s:\n got %s\nwant %s", format, got, want)
		}
	}
	evil := sample()
	evil.ClientDN = "CN=x\n\"forged\" line"
	if got := line(t, "%{+Q}[ssl_c_s_dn]", evil); got != `"CN=x\x0A\"forged\" line"` {
		t.Errorf("escaping: %s", got)
	}
	evil.Host = "a b\x01"
	if got := line(t, "text", evil); !strings.Contains(got, `host="a b\x01"`) {
		t.Errorf("text escaping: %s", got)
	}
	for _, bad := range []string{"%Zz", "%{+E}r", "%[nope", "{{ tenant }}"} {
		if _, err := formatter(bad); err == nil {
			t.Errorf("format %q accepted", bad)
		}
	}
}

// TestReopenLosesNoLine: 8 writers, 2,000 lines each, while the file is
// renamed and reopened 20 times: every line is in one of the files, whole.
func TestReopenLosesNoLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l, err := Open(Options{Output: "file", Path: path, Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				e := sample()
				e.RequestID = fmt.Sprintf("%d-%d", w, i)
				l.Log(e)
			}
		}()
	}
	for i := range 20 {
		time.Sleep(5 * time.Millisecond)
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, i)); err != nil {
			t.Fatal(err)
		}
		if err := l.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	files, _ := filepath.Glob(path + "*")
	seen := map[string]bool{}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			s := sc.Text()
			if !strings.HasPrefix(s, `{"time":`) || !strings.HasSuffix(s, `"}`) {
				t.Fatalf("a split or mixed line in %s: %q", f, s)
			}
			id := s[strings.Index(s, `"request_id":"`)+14 : len(s)-2]
			if seen[id] {
				t.Fatalf("line %s twice", id)
			}
			seen[id] = true
		}
		fh.Close()
	}
	if len(seen) != 16000 {
		t.Fatalf("%d of 16000 lines across %d files", len(seen), len(files))
	}
}

// TestSyslog: lines go to a syslog server as one message each.
func TestSyslog(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	l, err := Open(Options{Output: "syslog", SyslogAddress: "udp://" + pc.LocalAddr().String(), Format: "httplog"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	l.Log(sample())
	buf := make([]byte, 4096)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	msg := string(buf[:n])
	if !strings.HasPrefix(msg, "<134>") || !strings.Contains(msg, "terminator") || !strings.Contains(msg, `"GET /a?b=c HTTP/1.1" 200 345 12`) {
		t.Fatalf("syslog message %q", msg)
	}
	if _, err := Open(Options{Output: "syslog", SyslogAddress: "127.0.0.1:514"}); err == nil {
		t.Fatal("a syslog address without a scheme was accepted")
	}
}

// TestREADMEFieldsTable: the README's access-log field reference is the
// one the code defines; UPDATE_README=1 rewrites it.
func TestREADMEFieldsTable(t *testing.T) {
	tu.GeneratedSection(t, "../README.md",
		"<!-- accesslog:begin (generated from accesslog/; UPDATE_README=1 go test ./accesslog rewrites it) -->\n",
		"<!-- accesslog:end -->", FieldsTable())
}
