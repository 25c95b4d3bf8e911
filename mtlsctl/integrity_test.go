package mtlsctl_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
)

// TestConcurrentWritesAreAllKept: writers without If-Match each get a new
// version, and every accepted write is in the result. Before the fix a
// write copied the config before taking the lock and committed that stale
// copy over the writes made in between (7-12 of 16 pools survived).
func TestConcurrentWritesAreAllKept(t *testing.T) {
	e := newEnv(t, nil)
	const n = 16
	versions := make([]float64, n)
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("p%d", i)
			var body map[string]any
			codes[i], body, _ = e.call("PUT", "/v1/pools/"+name, map[string]any{"name": name, "members": []any{map[string]any{"address": "127.0.0.1", "protocol_port": 9}}}, nil)
			versions[i], _ = body["version"].(float64)
		}()
	}
	wg.Wait()
	for i := range n {
		if codes[i] != 200 {
			t.Fatalf("write %d: %d", i, codes[i])
		}
	}
	_, body, hdr := e.call("GET", "/v1/pools", nil, nil)
	pools, _ := body["pools"].([]any)
	if len(pools) != n {
		t.Fatalf("%d pools after %d accepted writes", len(pools), n)
	}
	if hdr.Get("ETag") != fmt.Sprintf("%q", fmt.Sprint(n)) {
		t.Fatalf("version %s after %d writes from version 0", hdr.Get("ETag"), n)
	}
	slices.Sort(versions)
	for i, v := range versions {
		if v != float64(i+1) {
			t.Fatalf("versions answered %v; want each of 1..%d once", versions, n)
		}
	}
}

// TestTransactionIsolatedAfterCommit: a transaction's staged edits never
// reach committed state except through its commit. Edits racing the
// commit either land before it (and are committed) or are refused; the
// served configuration always equals the persisted one.
func TestTransactionIsolatedAfterCommit(t *testing.T) {
	e := newEnv(t, nil)
	for round := range 40 {
		_, txn, _ := e.call("POST", "/v1/transactions", nil, nil)
		id := txn["id"].(string)
		pool := func(port int) map[string]any {
			return map[string]any{"name": "app", "members": []any{map[string]any{"address": "127.0.0.1", "protocol_port": port}}}
		}
		if c, _, _ := e.call("PUT", "/v1/transactions/"+id+"/pools/app", pool(1000+round), nil); c != 204 {
			t.Fatalf("stage: %d", c)
		}
		var wg sync.WaitGroup
		for k := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.call("PUT", "/v1/transactions/"+id+"/pools/app", pool(2000+k), nil)
			}()
		}
		code, _, _ := e.call("POST", "/v1/transactions/"+id+"/commit", nil, nil)
		wg.Wait()
		if code != 200 {
			t.Fatalf("round %d: commit %d", round, code)
		}
		// A late edit must find the transaction gone.
		if c, _, _ := e.call("PUT", "/v1/transactions/"+id+"/pools/app", pool(3000), nil); c != 404 {
			t.Fatalf("round %d: staged edit after commit: %d", round, c)
		}
		_, served, _ := e.call("GET", "/v1/config", nil, nil)
		raw, err := os.ReadFile(filepath.Join(e.ctl.StateDir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var persisted struct {
			Config map[string]any `json:"config"`
		}
		if err := json.Unmarshal(raw, &persisted); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(served["pools"], persisted.Config["pools"]) {
			t.Fatalf("round %d: served pools %v differ from persisted %v", round, served["pools"], persisted.Config["pools"])
		}
	}
}

// TestBodiesMustBeOneObject: a body of null, an array, an empty body or
// trailing bytes after the JSON value is refused, and nothing changes.
// Before the fix PUT /v1/config with null wiped every listener and pool.
func TestBodiesMustBeOneObject(t *testing.T) {
	e := newEnv(t, nil)
	if c, _, _ := e.call("PUT", "/v1/pools/app", map[string]any{"name": "app", "members": []any{map[string]any{"address": "127.0.0.1", "protocol_port": 9}}}, nil); c != 200 {
		t.Fatal(c)
	}
	_, _, hdr := e.call("GET", "/v1/config", nil, nil)
	version := hdr.Get("ETag")
	for path, bodies := range map[string][]string{
		"/v1/config":            {`null`, ``, `[]`, `{"listeners":[],"pools":[]} {"x":1}`, `{"listeners":[],"pools":[]}garbage`, `{}`, `{"listeners":[]}`, `{"listeners":null,"pools":[]}`},
		"/v1/pools/app":         {`null`, `"app"`, `{"name":"app"} trailing`},
		"/v1/pools/app/members": {`null`, `{"members":[]}{}`},
		"/v1/listeners/web":     {`null`, `7`},
	} {
		for _, b := range bodies {
			code, resp, _ := e.call("PUT", path, []byte(b), nil)
			if code != 400 || resp["error"] == nil {
				t.Errorf("PUT %s %q: %d %v; want 400", path, b, code, resp)
			}
		}
	}
	_, body, hdr := e.call("GET", "/v1/config", nil, nil)
	if hdr.Get("ETag") != version {
		t.Fatalf("version moved from %s to %s", version, hdr.Get("ETag"))
	}
	pools, _ := body["pools"].([]any)
	if len(pools) != 1 {
		t.Fatalf("pools after refused writes: %v", body["pools"])
	}
	// An explicit empty configuration is still a valid write.
	if c, b, _ := e.call("PUT", "/v1/config", []byte(`{"listeners":[],"pools":[]}`), nil); c != 200 {
		t.Fatalf("explicit empty config: %d %v", c, b)
	}
}
