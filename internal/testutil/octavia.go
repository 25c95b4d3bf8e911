package testutil

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
)

// octaviaPeer is scripts/octavia-peer as seen from a package two levels
// below the repository root (amphora/agent, cmd/terminator).
const octaviaPeer = "../../scripts/octavia-peer"

// Controller is Octavia's AmphoraAPIClient1_0 in a python3 process
// (scripts/octavia-peer client), driving one amphora agent.
type Controller struct {
	in  io.WriteCloser
	out *bufio.Scanner
}

// NewController starts Octavia's client for the agent at addr, presenting
// clientPEM and trusting serverCA; it ends with the test.
func NewController(t testing.TB, addr, ampID, clientPEM, serverCA string) *Controller {
	t.Helper()
	cmd := exec.Command(octaviaPeer, "client", addr, ampID, clientPEM, serverCA)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("Octavia's client (make deps installs python3-octavia): %v", err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &Controller{in: in, out: sc}
}

// Call runs one AmphoraAPIClient1_0 method and returns its result, or its
// exception as an error.
func (c *Controller) Call(t testing.TB, method string, args ...any) (any, error) {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"call": method, "args": args})
	if _, err := fmt.Fprintf(c.in, "%s\n", req); err != nil {
		t.Fatal(err)
	}
	if !c.out.Scan() {
		t.Fatalf("%s: Octavia's client exited", method)
	}
	var resp struct {
		OK     bool   `json:"ok"`
		Result any    `json:"result"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(c.out.Bytes(), &resp); err != nil {
		t.Fatalf("%s: %q", method, c.out.Text())
	}
	if !resp.OK {
		return nil, fmt.Errorf("%s", resp.Error)
	}
	return resp.Result, nil
}

// Must is Call that fails the test on an exception.
func (c *Controller) Must(t testing.TB, method string, args ...any) any {
	t.Helper()
	r, err := c.Call(t, method, args...)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return r
}
