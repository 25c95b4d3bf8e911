package mtlsctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/internal/atomicfile"
)

// DataPlane is the part of a configuration the control API owns: listeners,
// pools and process-wide TLS settings. Admin, logging and the control
// section itself stay with the config file.
type DataPlane struct {
	TLS       config.TLSGlobal  `json:"tls,omitempty"`
	Listeners []config.Listener `json:"listeners"`
	Pools     []config.Pool     `json:"pools"`
}

// persisted is the state directory's config.json.
type persisted struct {
	Version uint64    `json:"version"`
	Config  DataPlane `json:"config"`
}

// LoadState reads the last committed configuration from dir. ok is false
// when nothing was committed yet.
func LoadState(dir string) (dp *DataPlane, version uint64, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("control state: %w", err)
	}
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, 0, false, fmt.Errorf("control state %s: %w", filepath.Join(dir, "config.json"), err)
	}
	return &p.Config, p.Version, true, nil
}

// Merge returns base with its data-plane part replaced by dp, defaults
// applied. base is not modified.
func Merge(base *config.Config, dp *DataPlane) *config.Config {
	out := *base
	out.TLS, out.Listeners, out.Pools = dp.TLS, dp.Listeners, dp.Pools
	out.ApplyDefaults()
	return &out
}

// Extract returns a deep copy of cfg's data-plane part.
func Extract(cfg *config.Config) (*DataPlane, error) {
	return cloneDataPlane(&DataPlane{TLS: cfg.TLS, Listeners: cfg.Listeners, Pools: cfg.Pools})
}

func saveState(dir string, version uint64, dp *DataPlane) error {
	data, err := json.MarshalIndent(persisted{Version: version, Config: *dp}, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "config.json"), data, 0o600)
}

// writeAtomic writes a file by rename, so readers and restarts never see a
// partial one.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	return atomicfile.Write(path, data, mode)
}
