package vault_test

import (
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestKVOutageReportsStale: while Vault is unreachable a KV reference keeps
// serving its last bundle and is reported stale (the metric's source);
// once Vault answers again it is fresh. Before the fix a failed version
// check counted as "not moved", so KV refs never reported stale.
func TestKVOutageReportsStale(t *testing.T) {
	m, st := newManager(t, nil)
	ca := tu.CA(t, "kv outage CA")
	data, first := pemBundle(t, ca, "kvstale.example")
	kvPut(t, "tls/kvstale", data)
	ref := "vault:secret/data/tls/kvstale"
	addr, _ := serve(t, m, ref)
	roots := tu.Pool(ca)
	waitFor(t, 10*time.Second, "a first successful check", func() bool {
		st.mu.Lock()
		n := len(st.notAfter[ref])
		st.mu.Unlock()
		return st.err(ref) == nil && n > 0
	})
	resume := pauseVault(t)
	waitFor(t, 20*time.Second, "the KV reference to be reported stale", func() bool { return st.err(ref) != nil })
	if msg := st.err(ref).Error(); !strings.Contains(msg, "unreachable") || !strings.Contains(msg, ref) {
		t.Fatalf("stale reason %q; want it to name the ref and say Vault is unreachable", msg)
	}
	if c := served(t, addr, "kvstale.example", roots); !c.Equal(first) {
		t.Fatal("the served certificate changed while Vault was down")
	}
	resume()
	waitFor(t, 20*time.Second, "the KV reference to be fresh again", func() bool { return st.err(ref) == nil })
}

// pauseVault stops the Vault process (SIGSTOP: unreachable, requests time
// out) until the returned function, or the end of the test, resumes it.
func pauseVault(t *testing.T) (resume func()) {
	t.Helper()
	pid := devVault.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	resume = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(resume)
	return resume
}
