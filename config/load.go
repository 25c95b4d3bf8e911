package config

import (
	"errors"
	"fmt"
	"os"
)

// Load reads, decodes, defaults and validates the config file at path. On
// success it returns the config and the warnings found (expired values and
// settings terminator ignores); on failure the error lists every problem.
func Load(path string) (*Config, Problems, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, warnings, err := Parse(data)
	if err != nil {
		return nil, warnings, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, warnings, nil
}

// Parse decodes YAML or JSON (JSON is YAML) strictly, applies defaults and
// validates. Every problem is reported at once: those of decoding
// (unknown fields, wrong types) together with the validator's. See Load.
func Parse(data []byte) (*Config, Problems, error) {
	cfg, decodeProblems, err := Decode(data)
	if err != nil {
		return nil, nil, err
	}
	cfg.ApplyDefaults()
	warnings, err := cfg.Validate()
	if len(decodeProblems) > 0 {
		var ps Problems
		errors.As(err, &ps)
		return nil, warnings, append(decodeProblems, ps...)
	}
	if err != nil {
		return nil, warnings, err
	}
	return cfg, warnings, nil
}

// ApplyDefaults fills in Octavia's defaults for every unset field, so that
// the effective configuration is explicit (and shown by the control API).
func (c *Config) ApplyDefaults() {
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.AccessLog == nil {
		c.Log.AccessLog = ptr(true)
	}
	if c.TLS.SessionTicketLifetime == 0 {
		c.TLS.SessionTicketLifetime = DefaultSessionTicketLifetime
	}
	if c.TLS.RescanInterval == 0 {
		c.TLS.RescanInterval = 10000
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.ClientAuthentication == "" {
			l.ClientAuthentication = ClientAuthNone
		}
		setDefault(&l.TimeoutClientData, DefaultTimeoutClientData)
		setDefault(&l.TimeoutMemberConnect, DefaultTimeoutMemberConnect)
		setDefault(&l.TimeoutMemberData, DefaultTimeoutMemberData)
		setDefault(&l.ConnectionLimit, -1)
		for j := range l.L7Policies {
			pol := &l.L7Policies[j]
			if pol.Position == 0 {
				pol.Position = 2147483647 // Octavia: append
			}
			if pol.RedirectHTTPCode == 0 && (pol.Action == "REDIRECT_TO_URL" || pol.Action == "REDIRECT_PREFIX") {
				pol.RedirectHTTPCode = 302
			}
		}
		if l.Protocol == ProtocolTerminatedHTTPS {
			if l.TLSVersions == nil {
				l.TLSVersions = []string{"TLSv1.2", "TLSv1.3"}
			}
			if l.TLSCiphers == "" {
				l.TLSCiphers = DefaultListenerCiphers
			}
			if l.ALPNProtocols == nil {
				l.ALPNProtocols = []string{"h2", "http/1.1", "http/1.0"}
			}
		}
	}
	for i := range c.Pools {
		p := &c.Pools[i]
		if p.Protocol == "" {
			p.Protocol = ProtocolHTTP
		}
		if p.LBAlgorithm == "" {
			p.LBAlgorithm = AlgorithmRoundRobin
		}
		if p.TLSEnabled && p.TLSVersions == nil {
			p.TLSVersions = []string{"TLSv1.2", "TLSv1.3"}
		}
		for j := range p.Members {
			setDefault(&p.Members[j].Weight, 1)
		}
		if hm := p.HealthMonitor; hm != nil {
			if hm.MaxRetriesDown == 0 {
				hm.MaxRetriesDown = 3
			}
			if hm.Type == "HTTP" || hm.Type == "HTTPS" {
				if hm.HTTPMethod == "" {
					hm.HTTPMethod = "GET"
				}
				if hm.URLPath == "" {
					hm.URLPath = "/"
				}
				if hm.ExpectedCodes == "" {
					hm.ExpectedCodes = "200"
				}
			}
		}
	}
}

// EffectiveConnectionLimit is connection_limit with -1 resolved to Octavia's
// default of 50000.
func (l *Listener) EffectiveConnectionLimit() int {
	if l.ConnectionLimit == nil || *l.ConnectionLimit <= 0 { // 0 is falsy in Octavia too
		return DefaultConnectionLimit
	}
	return *l.ConnectionLimit
}

func setDefault(p **int, v int) {
	if *p == nil {
		*p = ptr(v)
	}
}

func ptr[T any](v T) *T { return &v }
