package testutil

import (
	"crypto/x509"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
)

// Load is a client loop that sends GET requests until finished, counting
// successes and failures (errors and non-200 answers).
type Load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex // guards firstErr
	firstErr   error
	wg         sync.WaitGroup
	stop       chan struct{}
}

// StartLoad runs workers loops against url with serverName, trusting roots.
// Odd workers speak HTTP/2; worker 0 opens a new connection (a new
// handshake) every newConnEvery requests.
func StartLoad(roots *x509.CertPool, url, serverName string, workers, newConnEvery int) *Load {
	return StartLoadChecked(roots, url, serverName, workers, newConnEvery, nil)
}

// StartLoadChecked is StartLoad with check, if set, judging every 200
// answer's body too.
func StartLoadChecked(roots *x509.CertPool, url, serverName string, workers, newConnEvery int, check func(body []byte) error) *Load {
	l := &Load{stop: make(chan struct{})}
	for i := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := Client(roots, serverName, i%2 == 1)
			defer c.CloseIdleConnections()
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				if i == 0 && newConnEvery > 0 && n%newConnEvery == 0 {
					c.CloseIdleConnections()
				}
				resp, err := c.Get(url)
				if err == nil {
					var body []byte
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case err != nil:
					case resp.StatusCode != 200:
						err = fmt.Errorf("status %d", resp.StatusCode)
					case check != nil:
						err = check(body)
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if l.firstErr == nil {
						l.firstErr = err
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}()
	}
	return l
}

// Finish stops the loop and fails the test if any request failed or none
// succeeded.
func (l *Load) Finish(t testing.TB) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("client loop: %d requests succeeded, %d failed", l.ok.Load(), l.failed.Load())
	if l.failed.Load() != 0 {
		t.Fatalf("%d requests failed; first: %v", l.failed.Load(), l.firstErr)
	}
	if l.ok.Load() == 0 {
		t.Fatal("the client loop sent no successful request")
	}
}
