package barbican_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Two real Barbicans on loopback: one in no-auth mode, one behind a real
// Keystone.
var envs = map[string]map[string]string{}

// TestMain starts the Barbicans, or fails the package loudly: these tests
// never pass without running. make test installs the packages first.
func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: barbican tests could not start a real Barbican:", err)
		fmt.Fprintln(os.Stderr, "      (scripts/barbican-dev install, as make test runs it, installs what they need)")
		os.Exit(1)
	}
	os.Exit(code)
}

// devScript is scripts/barbican-dev; TERMINATOR_BARBICAN_DEV replaces it
// (the root package's test uses that to check a failed start fails).
func devScript() string {
	if s := os.Getenv("TERMINATOR_BARBICAN_DEV"); s != "" {
		return s
	}
	return "../../scripts/barbican-dev"
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

func up(args ...string) (map[string]string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(devScript(), append([]string{"up"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("barbican-dev up %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	return kv, nil
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "barbican-dev")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	noauth := dir + "/noauth"
	ks := dir + "/keystone"
	defer exec.Command(devScript(), "down", noauth).Run()
	defer exec.Command(devScript(), "down", ks).Run()
	if envs["noauth"], err = up(noauth, "noauth", freePort()); err != nil {
		return 0, err
	}
	envs["noauth"]["STATE"] = noauth
	if envs["keystone"], err = up(ks, "keystone", freePort(), freePort()); err != nil {
		return 0, err
	}
	envs["keystone"]["STATE"] = ks
	return m.Run(), nil
}
