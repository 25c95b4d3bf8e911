package heartbeat

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"

	"github.com/terminator-proxy/terminator/internal/atomicfile"
)

// Totals are a listener's absolute counters since the data plane started.
type Totals struct {
	BytesOut, BytesIn, Connections, RequestErrors int64
}

// counters turns absolute totals into deltas, as haproxy's health sender
// does with its stats_counters.json: per listener the last totals sent
// ("bout", "bin", "stot", "ereq"); a total below the stored one means the
// data plane restarted, and the delta is then the total itself.
type counters struct {
	path string
	last map[string]map[string]int64
}

func loadCounters(path string) *counters {
	c := &counters{path: path, last: map[string]map[string]int64{}}
	data, err := os.ReadFile(path)
	if err == nil {
		_ = json.Unmarshal(data, &c.last) // a damaged file starts afresh, as Octavia's does
	}
	if c.last == nil {
		c.last = map[string]map[string]int64{}
	}
	return c
}

// delta records t for listener and returns the change since the last call.
func (c *counters) delta(listener string, t Totals) (tx, rx, tot, ereq int64) {
	prev := c.last[listener]
	if prev == nil {
		prev = map[string]int64{}
		c.last[listener] = prev
	}
	d := func(key string, now int64) int64 {
		old := prev[key]
		prev[key] = now
		if now < old {
			return now
		}
		return now - old
	}
	return d("bout", t.BytesOut), d("bin", t.BytesIn), d("stot", t.Connections), d("ereq", t.RequestErrors)
}

// save persists the counters (mode 0640, as Octavia's file).
func (c *counters) save() error {
	if c.path == "" {
		return nil
	}
	data, err := json.Marshal(c.last)
	if err != nil {
		return err
	}
	err = atomicfile.Write(c.path, data, 0o640)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // base_path not made yet
	}
	return err
}
