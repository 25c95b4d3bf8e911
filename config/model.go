package config

import (
	"net"
	"strconv"
	"strings"
)

// Protocols, client-authentication modes and algorithms, spelled as Octavia
// spells them.
const (
	ProtocolHTTP            = "HTTP"
	ProtocolTerminatedHTTPS = "TERMINATED_HTTPS"
	// ProtocolTCP and ProtocolHTTPS (TLS passed through to the members)
	// are layer-4 listeners: bytes are relayed, nothing is parsed.
	ProtocolTCP   = "TCP"
	ProtocolHTTPS = "HTTPS"
	// ProtocolPrometheus serves terminator's metrics (GET /metrics), with
	// haproxy's exporter names beside them.
	ProtocolPrometheus = "PROMETHEUS"
	// ProtocolUDP relays datagrams per client flow, as keepalived's LVS
	// does on an amphora.
	ProtocolUDP = "UDP"

	ClientAuthNone      = "NONE"
	ClientAuthOptional  = "OPTIONAL"
	ClientAuthMandatory = "MANDATORY"

	AlgorithmRoundRobin = "ROUND_ROBIN"
)

// Octavia's listener defaults (octavia constants.py), in milliseconds.
const (
	DefaultTimeoutClientData    = 50000
	DefaultTimeoutMemberConnect = 5000
	DefaultTimeoutMemberData    = 50000
	DefaultConnectionLimit      = 50000 // [haproxy_amphora] default_connection_limit, used for -1
	maxTimeout                  = 2073600000
)

// Config is one complete, immutable-by-convention configuration. Callers must
// not modify a Config after handing it to the data plane; build a new one.
type Config struct {
	Admin     Admin      `yaml:"admin,omitempty" json:"admin,omitempty"`
	Log       Log        `yaml:"log,omitempty" json:"log,omitempty"`
	TLS       TLSGlobal  `yaml:"tls,omitempty" json:"tls,omitempty"`
	Control   *Control   `yaml:"control,omitempty" json:"control,omitempty"`
	Vault     *Vault     `yaml:"vault,omitempty" json:"vault,omitempty"`
	Barbican  *Barbican  `yaml:"barbican,omitempty" json:"barbican,omitempty"`
	ACME      *ACME      `yaml:"acme,omitempty" json:"acme,omitempty"`
	Listeners []Listener `yaml:"listeners" json:"listeners"`
	Pools     []Pool     `yaml:"pools,omitempty" json:"pools,omitempty"`
	// Peers shares the persistence tables with the other instances of a
	// pair, as haproxy's peers section does for Octavia's ACTIVE_STANDBY.
	Peers *Peers `yaml:"peers,omitempty" json:"peers,omitempty"`
}

// Peers are the instances that share SOURCE_IP and APP_COOKIE persistence
// tables: every one listens on its address for the others' updates, which
// are authenticated with the shared key.
type Peers struct {
	Local string `yaml:"local" json:"local"` // the name of this instance among Peers
	Peers []Peer `yaml:"peers" json:"peers"`
	Key   string `yaml:"key" json:"key"` // shared secret, at least 16 bytes
}

// Peer is one instance: a name and the host:port it listens on.
type Peer struct {
	Name    string `yaml:"name" json:"name"`
	Address string `yaml:"address" json:"address"`
}

// Control configures the mTLS control API. Its server certificate comes
// from any certificate-manager reference; clients must present a
// certificate that chains to the client CA (and only to it) for client
// authentication.
type Control struct {
	Bind            string `yaml:"bind,omitempty" json:"bind,omitempty"` // default :9443
	TLSContainerRef string `yaml:"tls_container_ref" json:"tls_container_ref"`
	ClientCARef     string `yaml:"client_ca_ref" json:"client_ca_ref"`
	ClientCRLRef    string `yaml:"client_crl_ref,omitempty" json:"client_crl_ref,omitempty"`
	// AllowedClients, if set, lists the client identities accepted (a
	// certificate's CN, DNS SAN or URI SAN); others are refused.
	AllowedClients []string `yaml:"allowed_clients,omitempty" json:"allowed_clients,omitempty"`
	// StateDir keeps the last committed configuration and uploaded
	// certificates, so a restart comes back as the API left it.
	StateDir string `yaml:"state_dir" json:"state_dir"`
	// Renew, if set, renews the control server certificate before it
	// expires, by a CSR to the signer.
	Renew *ControlRenew `yaml:"renew,omitempty" json:"renew,omitempty"`
}

// ControlRenew selects the signer for the control server certificate.
// CADir is a "terminator ca" directory whose server CA signs; Validity is a
// Go duration (default 12h, the seed's short-lived certificates); the
// certificate is renewed at two thirds of its lifetime, with jitter.
type ControlRenew struct {
	// CADir is a "terminator ca" directory; or VaultRole ("pki/web") has
	// Vault PKI sign instead (needs the vault section).
	CADir          string `yaml:"ca_dir,omitempty" json:"ca_dir,omitempty"`
	VaultRole      string `yaml:"vault_role,omitempty" json:"vault_role,omitempty"`
	PassphraseFile string `yaml:"passphrase_file,omitempty" json:"passphrase_file,omitempty"`
	CommonName     string `yaml:"common_name" json:"common_name"`
	Validity       string `yaml:"validity,omitempty" json:"validity,omitempty"`
}

// Admin is the plain-HTTP operations endpoint: /metrics, /healthz, /readyz.
// An empty Bind disables it. Pprof adds Go's /debug/pprof/ profiles; keep
// the admin address on loopback or a management network when it is on.
type Admin struct {
	Bind  string `yaml:"bind,omitempty" json:"bind,omitempty"`
	Pprof bool   `yaml:"pprof,omitempty" json:"pprof,omitempty"`
}

// Log selects the log format ("text" or "json"), the level ("debug",
// "info", "warn", "error") and whether one access-log line is written per
// request (default true).
type Log struct {
	Format    string `yaml:"format,omitempty" json:"format,omitempty"`
	Level     string `yaml:"level,omitempty" json:"level,omitempty"`
	AccessLog *bool  `yaml:"access_log,omitempty" json:"access_log,omitempty"`
	// Access, if set, sends the access log to its own output and format
	// instead of the process log.
	Access *AccessLog `yaml:"access,omitempty" json:"access,omitempty"`
	// RequestID gives every request an X-Request-Id (kept when the client
	// sent one), passed to the member and written in the access log.
	RequestID bool `yaml:"request_id,omitempty" json:"request_id,omitempty"`
}

// AccessLog is where access-log lines go: output "stderr", "file" (path;
// reopened on SIGUSR1, for logrotate) or "syslog" (syslog_address:
// udp://, tcp:// or unix://), as "text", "json", "httplog" (Octavia's
// default user_log_format) or a haproxy log-format string.
type AccessLog struct {
	Output        string `yaml:"output,omitempty" json:"output,omitempty"`
	Path          string `yaml:"path,omitempty" json:"path,omitempty"`
	SyslogAddress string `yaml:"syslog_address,omitempty" json:"syslog_address,omitempty"`
	Format        string `yaml:"format,omitempty" json:"format,omitempty"`
}

// DefaultSessionTicketLifetime is haproxy's tune.ssl.lifetime, in ms.
const DefaultSessionTicketLifetime = 300000

// TLSGlobal holds process-wide TLS settings that Octavia has no field for.
type TLSGlobal struct {
	// SessionTicketKeysFile names a file of base64-encoded 32-byte keys, one a
	// line; the first encrypts new tickets and all of them decrypt. Several
	// instances sharing the file resume each other's sessions. Empty means
	// per-process keys rotated by crypto/tls.
	SessionTicketKeysFile string `yaml:"session_ticket_keys_file,omitempty" json:"session_ticket_keys_file,omitempty"`
	// SessionTicketLifetime is how long, in milliseconds, a session ticket
	// resumes a session after the full handshake that made it: haproxy's
	// tune.ssl.lifetime. Default 300000 (haproxy's 300 s); 0 uses it.
	SessionTicketLifetime int `yaml:"session_ticket_lifetime,omitempty" json:"session_ticket_lifetime,omitempty"`
	// RescanInterval is how often, in milliseconds, file-backed references
	// are re-read and compared by checksum, as a safety net for missed
	// change notifications. Default 10000; 0 uses the default.
	RescanInterval int `yaml:"rescan_interval,omitempty" json:"rescan_interval,omitempty"`
}

// Listener is an Octavia listener. Bind replaces Octavia's VIP address and
// protocol_port; StrictSNI is a terminator extension.
type Listener struct {
	ID           string `yaml:"id,omitempty" json:"id,omitempty"`
	Name         string `yaml:"name,omitempty" json:"name,omitempty"`
	Description  string `yaml:"description,omitempty" json:"description,omitempty"`
	AdminStateUp *bool  `yaml:"admin_state_up,omitempty" json:"admin_state_up,omitempty"`
	Protocol     string `yaml:"protocol" json:"protocol"`
	Bind         string `yaml:"bind" json:"bind"`
	// AdditionalBinds are further addresses served the same way (Octavia's
	// additional VIPs).
	AdditionalBinds []string `yaml:"additional_binds,omitempty" json:"additional_binds,omitempty"`

	DefaultTLSContainerRef  string   `yaml:"default_tls_container_ref,omitempty" json:"default_tls_container_ref,omitempty"`
	SNIContainerRefs        []string `yaml:"sni_container_refs,omitempty" json:"sni_container_refs,omitempty"`
	ClientAuthentication    string   `yaml:"client_authentication,omitempty" json:"client_authentication,omitempty"`
	ClientCATLSContainerRef string   `yaml:"client_ca_tls_container_ref,omitempty" json:"client_ca_tls_container_ref,omitempty"`
	ClientCRLContainerRef   string   `yaml:"client_crl_container_ref,omitempty" json:"client_crl_container_ref,omitempty"`
	TLSVersions             []string `yaml:"tls_versions,omitempty" json:"tls_versions,omitempty"`
	TLSCiphers              string   `yaml:"tls_ciphers,omitempty" json:"tls_ciphers,omitempty"`
	ALPNProtocols           []string `yaml:"alpn_protocols,omitempty" json:"alpn_protocols,omitempty"`
	// StrictSNI rejects handshakes whose server name matches no certificate
	// (haproxy strict-sni); handshakes without SNI still get the default.
	StrictSNI bool `yaml:"strict_sni,omitempty" json:"strict_sni,omitempty"`

	InsertHeaders        map[string]string `yaml:"insert_headers,omitempty" json:"insert_headers,omitempty"`
	TimeoutClientData    *int              `yaml:"timeout_client_data,omitempty" json:"timeout_client_data,omitempty"`
	TimeoutMemberConnect *int              `yaml:"timeout_member_connect,omitempty" json:"timeout_member_connect,omitempty"`
	TimeoutMemberData    *int              `yaml:"timeout_member_data,omitempty" json:"timeout_member_data,omitempty"`
	ConnectionLimit      *int              `yaml:"connection_limit,omitempty" json:"connection_limit,omitempty"`
	// AllowedCIDRs, if set, refuses connections from other source
	// addresses at accept (Octavia enforces it with security groups).
	AllowedCIDRs []string `yaml:"allowed_cidrs,omitempty" json:"allowed_cidrs,omitempty"`
	// ProxyProtocolFrom lists the sources (CIDRs) that must open each
	// connection with a PROXY protocol v1 or v2 header, whose client address
	// then counts; other sources may not send one (a terminator extension).
	ProxyProtocolFrom    []string `yaml:"proxy_protocol_from,omitempty" json:"proxy_protocol_from,omitempty"`
	HSTSMaxAge           *int     `yaml:"hsts_max_age,omitempty" json:"hsts_max_age,omitempty"`
	HSTSIncludeSubdomain bool     `yaml:"hsts_include_subdomains,omitempty" json:"hsts_include_subdomains,omitempty"`
	HSTSPreload          bool     `yaml:"hsts_preload,omitempty" json:"hsts_preload,omitempty"`

	// HTTPSRedirect, on an HTTP listener, answers every request with a
	// redirect to the same host, path and query over HTTPS (a terminator
	// extension; Octavia's form is a REDIRECT_PREFIX policy to "https://").
	HTTPSRedirect *HTTPSRedirect `yaml:"https_redirect,omitempty" json:"https_redirect,omitempty"`

	// L7Policies route, redirect or reject requests before the default pool.
	L7Policies []L7Policy `yaml:"l7policies,omitempty" json:"l7policies,omitempty"`

	// DefaultPool names the pool by name or id; DefaultPoolID is Octavia's
	// id-only spelling. At most one may be set.
	DefaultPool   string `yaml:"default_pool,omitempty" json:"default_pool,omitempty"`
	DefaultPoolID string `yaml:"default_pool_id,omitempty" json:"default_pool_id,omitempty"`
}

// HTTPSRedirect is where an HTTP listener sends its clients: the HTTPS
// port (default 443, left out of the URL) and the status (default 301).
type HTTPSRedirect struct {
	Port int `yaml:"port,omitempty" json:"port,omitempty"`
	Code int `yaml:"code,omitempty" json:"code,omitempty"`
}

// Pool is an Octavia pool of members.
type Pool struct {
	ID           string   `yaml:"id,omitempty" json:"id,omitempty"`
	Name         string   `yaml:"name,omitempty" json:"name,omitempty"`
	Description  string   `yaml:"description,omitempty" json:"description,omitempty"`
	AdminStateUp *bool    `yaml:"admin_state_up,omitempty" json:"admin_state_up,omitempty"`
	Protocol     string   `yaml:"protocol,omitempty" json:"protocol,omitempty"`
	LBAlgorithm  string   `yaml:"lb_algorithm,omitempty" json:"lb_algorithm,omitempty"`
	Members      []Member `yaml:"members,omitempty" json:"members,omitempty"`
	// TLSEnabled re-encrypts to members: CATLSContainerRef (and
	// CRLContainerRef) verify them, TLSContainerRef is terminator's client
	// certificate; without a CA members are not verified (haproxy's
	// "verify none").
	TLSEnabled        bool     `yaml:"tls_enabled,omitempty" json:"tls_enabled,omitempty"`
	TLSContainerRef   string   `yaml:"tls_container_ref,omitempty" json:"tls_container_ref,omitempty"`
	CATLSContainerRef string   `yaml:"ca_tls_container_ref,omitempty" json:"ca_tls_container_ref,omitempty"`
	CRLContainerRef   string   `yaml:"crl_container_ref,omitempty" json:"crl_container_ref,omitempty"`
	TLSVersions       []string `yaml:"tls_versions,omitempty" json:"tls_versions,omitempty"`
	TLSCiphers        string   `yaml:"tls_ciphers,omitempty" json:"tls_ciphers,omitempty"`
	// ALPNProtocols are offered to TLS members in order; with h2 among
	// them, a member that selects it is spoken to in HTTP/2 (gRPC).
	ALPNProtocols []string `yaml:"alpn_protocols,omitempty" json:"alpn_protocols,omitempty"`
	// H2C speaks HTTP/2 with prior knowledge to members without TLS
	// (haproxy's "proto h2"): a terminator extension, Octavia has no field
	// for it.
	H2C bool `yaml:"h2c,omitempty" json:"h2c,omitempty"`
	// SessionPersistence keeps a client on one member (while it is up).
	SessionPersistence *SessionPersistence `yaml:"session_persistence,omitempty" json:"session_persistence,omitempty"`
	// HealthMonitor, if set, checks every member actively.
	HealthMonitor *HealthMonitor `yaml:"healthmonitor,omitempty" json:"healthmonitor,omitempty"`
}

// SessionPersistence is Octavia's session_persistence: SOURCE_IP (a table
// of client addresses), HTTP_COOKIE (terminator inserts its own cookie) or
// APP_COOKIE (follow the application's cookie_name).
type SessionPersistence struct {
	Type                   string `yaml:"type" json:"type"`
	CookieName             string `yaml:"cookie_name,omitempty" json:"cookie_name,omitempty"`
	PersistenceTimeout     *int   `yaml:"persistence_timeout,omitempty" json:"persistence_timeout,omitempty"`
	PersistenceGranularity string `yaml:"persistence_granularity,omitempty" json:"persistence_granularity,omitempty"`
}

// HealthMonitor is Octavia's health monitor: delay and timeout in seconds;
// max_retries successes mark a member UP (rise), max_retries_down failures
// DOWN (fall).
type HealthMonitor struct {
	Type           string   `yaml:"type" json:"type"` // HTTP, HTTPS, TCP, TLS-HELLO, PING (checked as TCP)
	Delay          int      `yaml:"delay" json:"delay"`
	Timeout        int      `yaml:"timeout" json:"timeout"`
	MaxRetries     int      `yaml:"max_retries" json:"max_retries"`
	MaxRetriesDown int      `yaml:"max_retries_down,omitempty" json:"max_retries_down,omitempty"`
	HTTPMethod     string   `yaml:"http_method,omitempty" json:"http_method,omitempty"`
	URLPath        string   `yaml:"url_path,omitempty" json:"url_path,omitempty"`
	HTTPVersion    *float64 `yaml:"http_version,omitempty" json:"http_version,omitempty"`
	DomainName     string   `yaml:"domain_name,omitempty" json:"domain_name,omitempty"`
	ExpectedCodes  string   `yaml:"expected_codes,omitempty" json:"expected_codes,omitempty"`
	AdminStateUp   *bool    `yaml:"admin_state_up,omitempty" json:"admin_state_up,omitempty"`
}

// Member is one backend server of a pool.
type Member struct {
	ID           string `yaml:"id,omitempty" json:"id,omitempty"`
	Name         string `yaml:"name,omitempty" json:"name,omitempty"`
	Address      string `yaml:"address" json:"address"`
	ProtocolPort int    `yaml:"protocol_port" json:"protocol_port"`
	Weight       *int   `yaml:"weight,omitempty" json:"weight,omitempty"`
	Backup       bool   `yaml:"backup,omitempty" json:"backup,omitempty"`
	AdminStateUp *bool  `yaml:"admin_state_up,omitempty" json:"admin_state_up,omitempty"`
	// MonitorAddress and MonitorPort, if set, are checked instead of the
	// member's own address and port.
	MonitorAddress string `yaml:"monitor_address,omitempty" json:"monitor_address,omitempty"`
	MonitorPort    int    `yaml:"monitor_port,omitempty" json:"monitor_port,omitempty"`
	// MaxConnections caps the member's requests in progress (a terminator
	// extension, haproxy's server maxconn); 0 is no cap.
	MaxConnections int `yaml:"max_connections,omitempty" json:"max_connections,omitempty"`
}

// Key returns the listener's identity: its id, or its name when it has no id.
func (l *Listener) Key() string {
	if l.ID != "" {
		return l.ID
	}
	return l.Name
}

// Key returns the pool's identity: its id, or its name when it has no id.
func (p *Pool) Key() string {
	if p.ID != "" {
		return p.ID
	}
	return p.Name
}

// Enabled reports admin_state_up, which defaults to true.
func (l *Listener) Enabled() bool { return l.AdminStateUp == nil || *l.AdminStateUp }

// Layer4 reports a TCP or HTTPS (pass-through) listener.
func (l *Listener) Layer4() bool { return l.Protocol == ProtocolTCP || l.Protocol == ProtocolHTTPS }

// Enabled reports whether the pool is administratively up. Octavia renders
// no backend for a disabled pool: it serves no listener and no L7 policy.
func (p *Pool) Enabled() bool { return p.AdminStateUp == nil || *p.AdminStateUp }

// Enabled reports admin_state_up, which defaults to true.
func (m *Member) Enabled() bool { return m.AdminStateUp == nil || *m.AdminStateUp }

// HostPort is the member's address and port, host:port.
func (m *Member) HostPort() string { return net.JoinHostPort(m.Address, strconv.Itoa(m.ProtocolPort)) }

// Label names the member in logs and metrics: its name, else host:port.
func (m *Member) Label() string {
	if m.Name != "" {
		return m.Name
	}
	return m.HostPort()
}

// PoolRef is the listener's default pool reference, by either spelling.
func (l *Listener) PoolRef() string {
	if l.DefaultPool != "" {
		return l.DefaultPool
	}
	return l.DefaultPoolID
}

// HeaderEnabled reports whether insert_headers turns the named header on.
// As in Octavia, only the value "true" (any case) enables a header.
func (l *Listener) HeaderEnabled(name string) bool {
	for k, v := range l.InsertHeaders {
		if strings.EqualFold(k, name) {
			return strings.EqualFold(v, "true")
		}
	}
	return false
}

// CertRefs lists every certificate reference the listener uses, the default
// first, without duplicates.
func (l *Listener) CertRefs() []string {
	out := make([]string, 0, 1+len(l.SNIContainerRefs))
	seen := map[string]bool{}
	for _, r := range append([]string{l.DefaultTLSContainerRef}, l.SNIContainerRefs...) {
		if r != "" && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// FindPool returns the pool whose id or name is ref, or nil.
func (c *Config) FindPool(ref string) *Pool {
	for i := range c.Pools {
		if c.Pools[i].ID == ref && ref != "" {
			return &c.Pools[i]
		}
	}
	for i := range c.Pools {
		if c.Pools[i].Name == ref && ref != "" {
			return &c.Pools[i]
		}
	}
	return nil
}

// ACME configures acme://NAME certificate references: certificates
// obtained from an ACME CA and renewed two thirds into their lifetime.
type ACME struct {
	// Directory is the CA's directory URL.
	Directory string `yaml:"directory" json:"directory"`
	// AgreeTOS must be true: it accepts the CA's terms of service.
	AgreeTOS bool   `yaml:"agree_tos" json:"agree_tos"`
	Email    string `yaml:"email,omitempty" json:"email,omitempty"`
	// CACert is a PEM file of CAs to trust for the directory's HTTPS,
	// beside the system's (a private or test CA).
	CACert string   `yaml:"ca_cert,omitempty" json:"ca_cert,omitempty"`
	EAB    *ACMEEAB `yaml:"eab,omitempty" json:"eab,omitempty"`
	// Challenges in order of preference: tls-alpn-01, http-01 (default
	// both, in that order).
	Challenges []string `yaml:"challenges,omitempty" json:"challenges,omitempty"`
	// KeyType of certificate keys: ecdsa-p256 (default), ecdsa-p384,
	// rsa-2048, rsa-4096.
	KeyType string `yaml:"key_type,omitempty" json:"key_type,omitempty"`
	// Storage holds the account, certificates and issuance locks:
	// file:///DIR (default file:///var/lib/terminator/acme), or, shared
	// by a fleet, vault://MOUNT/PATH (a KV v2 mount of the vault section's
	// server) or barbican:///PREFIX (the barbican section's project).
	Storage string `yaml:"storage,omitempty" json:"storage,omitempty"`
	// CheckInterval (ms) is how often the storage is re-read for
	// certificates other instances obtained; default 60000.
	CheckInterval int `yaml:"check_interval,omitempty" json:"check_interval,omitempty"`
}

// ACMEEAB is an external account binding: the key id and a file holding
// the base64url HMAC key the CA issued.
type ACMEEAB struct {
	KeyID       string `yaml:"key_id" json:"key_id"`
	HMACKeyFile string `yaml:"hmac_key_file" json:"hmac_key_file"`
}

// Vault configures the vault: and vault-pki: certificate references. Unset
// fields fall back to the standard VAULT_* environment variables
// (VAULT_ADDR, VAULT_CACERT, VAULT_NAMESPACE, VAULT_TOKEN, …).
type Vault struct {
	Address   string    `yaml:"address,omitempty" json:"address,omitempty"`
	Namespace string    `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	CACert    string    `yaml:"ca_cert,omitempty" json:"ca_cert,omitempty"` // PEM file to verify Vault
	Auth      VaultAuth `yaml:"auth,omitempty" json:"auth,omitempty"`
	// RefreshInterval (ms) is how often KV references are checked for a new
	// version (with jitter); default 30000.
	RefreshInterval int `yaml:"refresh_interval,omitempty" json:"refresh_interval,omitempty"`
}

// VaultAuth selects how terminator logs in to Vault: "token" (token_file
// or VAULT_TOKEN), "approle" (role_id, secret_id_file) or "cert" (TLS
// client certificate auth with client_cert and client_key; cert_role names
// the role). mount overrides the auth method's mount path.
type VaultAuth struct {
	Method       string `yaml:"method,omitempty" json:"method,omitempty"`
	TokenFile    string `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	RoleID       string `yaml:"role_id,omitempty" json:"role_id,omitempty"`
	SecretIDFile string `yaml:"secret_id_file,omitempty" json:"secret_id_file,omitempty"`
	ClientCert   string `yaml:"client_cert,omitempty" json:"client_cert,omitempty"`
	ClientKey    string `yaml:"client_key,omitempty" json:"client_key,omitempty"`
	CertRole     string `yaml:"cert_role,omitempty" json:"cert_role,omitempty"`
	Mount        string `yaml:"mount,omitempty" json:"mount,omitempty"`
}

// Barbican configures Barbican hrefs (https://…/v1/secrets/…, …/containers/…).
// Authentication, in order: a clouds.yaml cloud; the Keystone fields here
// (password, application credential or token); the standard OS_*
// variables; else no-auth development mode with endpoint and project_id.
type Barbican struct {
	Cloud     string `yaml:"cloud,omitempty" json:"cloud,omitempty"`
	Endpoint  string `yaml:"endpoint,omitempty" json:"endpoint,omitempty"` // overrides the catalog
	Region    string `yaml:"region,omitempty" json:"region,omitempty"`
	Interface string `yaml:"interface,omitempty" json:"interface,omitempty"` // public, internal, admin

	AuthURL                         string `yaml:"auth_url,omitempty" json:"auth_url,omitempty"`
	Username                        string `yaml:"username,omitempty" json:"username,omitempty"`
	PasswordFile                    string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	UserDomainName                  string `yaml:"user_domain_name,omitempty" json:"user_domain_name,omitempty"`
	ProjectName                     string `yaml:"project_name,omitempty" json:"project_name,omitempty"`
	ProjectDomainName               string `yaml:"project_domain_name,omitempty" json:"project_domain_name,omitempty"`
	ApplicationCredentialID         string `yaml:"application_credential_id,omitempty" json:"application_credential_id,omitempty"`
	ApplicationCredentialSecretFile string `yaml:"application_credential_secret_file,omitempty" json:"application_credential_secret_file,omitempty"`
	TokenFile                       string `yaml:"token_file,omitempty" json:"token_file,omitempty"`

	// No-auth development mode (Barbican's unauthenticated-context).
	ProjectID string `yaml:"project_id,omitempty" json:"project_id,omitempty"`
	UserID    string `yaml:"user_id,omitempty" json:"user_id,omitempty"`

	// RecheckInterval (ms) between re-checks of refs in use; default 300000.
	RecheckInterval int `yaml:"recheck_interval,omitempty" json:"recheck_interval,omitempty"`
}

// L7Policy is an Octavia L7 policy: when all its rules match, its action
// applies. REJECT and redirects are evaluated before REDIRECT_TO_POOL, as
// haproxy runs deny and redirect before use_backend; within each group by
// position.
type L7Policy struct {
	ID               string   `yaml:"id,omitempty" json:"id,omitempty"`
	Name             string   `yaml:"name,omitempty" json:"name,omitempty"`
	Action           string   `yaml:"action" json:"action"` // REJECT, REDIRECT_TO_URL, REDIRECT_PREFIX, REDIRECT_TO_POOL
	Position         int      `yaml:"position,omitempty" json:"position,omitempty"`
	RedirectPool     string   `yaml:"redirect_pool,omitempty" json:"redirect_pool,omitempty"` // by name or id
	RedirectPoolID   string   `yaml:"redirect_pool_id,omitempty" json:"redirect_pool_id,omitempty"`
	RedirectURL      string   `yaml:"redirect_url,omitempty" json:"redirect_url,omitempty"`
	RedirectPrefix   string   `yaml:"redirect_prefix,omitempty" json:"redirect_prefix,omitempty"`
	RedirectHTTPCode int      `yaml:"redirect_http_code,omitempty" json:"redirect_http_code,omitempty"`
	AdminStateUp     *bool    `yaml:"admin_state_up,omitempty" json:"admin_state_up,omitempty"`
	Rules            []L7Rule `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// L7Rule is one condition of a policy.
type L7Rule struct {
	Type         string `yaml:"type" json:"type"`                 // HOST_NAME, PATH, FILE_TYPE, HEADER, COOKIE, SSL_CONN_HAS_CERT, SSL_VERIFY_RESULT, SSL_DN_FIELD
	CompareType  string `yaml:"compare_type" json:"compare_type"` // EQUAL_TO, STARTS_WITH, ENDS_WITH, CONTAINS, REGEX
	Key          string `yaml:"key,omitempty" json:"key,omitempty"`
	Value        string `yaml:"value" json:"value"`
	Invert       bool   `yaml:"invert,omitempty" json:"invert,omitempty"`
	AdminStateUp *bool  `yaml:"admin_state_up,omitempty" json:"admin_state_up,omitempty"`
}

// Enabled reports admin_state_up, which defaults to true.
func (p *L7Policy) Enabled() bool { return p.AdminStateUp == nil || *p.AdminStateUp }

// Enabled reports admin_state_up, which defaults to true.
func (r *L7Rule) Enabled() bool { return r.AdminStateUp == nil || *r.AdminStateUp }

// PoolRef is the policy's target pool, by either spelling.
func (p *L7Policy) PoolRef() string {
	if p.RedirectPool != "" {
		return p.RedirectPool
	}
	return p.RedirectPoolID
}
