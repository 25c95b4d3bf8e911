package netplug

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/terminator-proxy/terminator/internal/atomicfile"
)

// entry is one plugged NIC as recorded in the state file: the request
// that plugged it, replayed by Restore.
type entry struct {
	MAC       string  `json:"mac_address"`
	Interface string  `json:"interface"`
	VIP       string  `json:"vip,omitempty"`
	VIPNet    *VIPNet `json:"vip_net,omitempty"`
	Port      *Port   `json:"port,omitempty"`
}

// maxState bounds the state file: a few hundred NICs at most.
const maxState = 1 << 20

func (p *Plugger) load() ([]entry, error) {
	if p.o.StateFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p.o.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxState {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", p.o.StateFile, len(b), maxState)
	}
	var es []entry
	if err := json.Unmarshal(b, &es); err != nil {
		return nil, fmt.Errorf("%s: %w", p.o.StateFile, err)
	}
	return es, nil
}

// record adds or replaces e (by MAC) in the state file.
func (p *Plugger) record(e entry) error {
	if p.o.StateFile == "" {
		return nil
	}
	es, err := p.load()
	if err != nil {
		return fmt.Errorf("plugged interfaces: %w", err)
	}
	out := []entry{}
	for _, x := range es {
		if x.MAC != e.MAC {
			out = append(out, x)
		}
	}
	out = append(out, e)
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.o.StateFile), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(p.o.StateFile, b, 0o644)
}

// Restore replays every recorded plug and VIP rule set, as an amphora does at boot before
// the controller calls: each NIC is moved back into the namespace under
// its recorded name and configured again. It returns every failure
// joined; the NICs that could be restored are.
func (p *Plugger) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	es, err := p.load()
	if err != nil {
		return fmt.Errorf("plugged interfaces: %w", err)
	}
	var errs []error
	for _, e := range es {
		var pl *plan
		var err error
		switch {
		case e.VIPNet != nil:
			pl, err = vipPlan(e.VIP, e.VIPNet, nil, p.o.Topology)
		case e.Port != nil:
			pl, err = planPort(e.Port, p.o.Topology)
		default:
			err = errors.New("entry has neither vip_net nor port")
		}
		if err == nil {
			_, err = p.plug(e.MAC, e.Interface, pl, false)
			if errors.Is(err, errExisting) {
				err = nil
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restoring %s (%s): %w", e.Interface, e.MAC, err))
		}
	}
	if err := p.restoreRules(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
