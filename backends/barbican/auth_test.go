package barbican_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/terminator-proxy/terminator/backends/barbican"
	tu "github.com/terminator-proxy/terminator/internal/testutil"
)

// TestAuthFromStandardEnvironment: the settings the openstack CLI
// accepts reach the real Keystone and Barbican: openrc files naming the
// user's and the project's domains by name or id (gophercloud's
// AuthOptionsFromEnv refused them: "exactly one of DomainID or
// DomainName"), and OS_CLOUD naming a clouds.yaml entry when no cloud is
// configured (it used to be overridden by the empty name).
func TestAuthFromStandardEnvironment(t *testing.T) {
	ks := envs["keystone"]
	var f fixture
	for _, fx := range fixtures(t) {
		if fx.mode == "keystone" {
			f = fx
		}
	}
	data, _ := p12For(t, tu.CA(t, "env CA"), "env.example", "")
	ref := f.storeP12(t, data)
	clear := func() {
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OS_") {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
		}
	}
	openrc := map[string]map[string]string{
		"domain names (devstack openrc)": {"OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default", "OS_PROJECT_NAME": "admin"},
		"domain ids":                     {"OS_USER_DOMAIN_ID": "default", "OS_PROJECT_DOMAIN_ID": "default", "OS_PROJECT_NAME": "admin"},
		"default domain for both":        {"OS_DEFAULT_DOMAIN_ID": "default", "OS_PROJECT_NAME": "admin"},
		"v2-era tenant name":             {"OS_USER_DOMAIN_ID": "default", "OS_PROJECT_DOMAIN_ID": "default", "OS_TENANT_NAME": "admin"},
		"OS_DOMAIN_ID for both":          {"OS_DOMAIN_ID": "default", "OS_PROJECT_NAME": "admin"},
	}
	fetch := func(t *testing.T, cloud string) {
		t.Helper()
		env, found, err := barbican.AuthFromEnvironment(cloud, os.Getenv)
		if err != nil || !found {
			t.Fatalf("found=%v err=%v", found, err)
		}
		m := f.manager(t, func(o *barbican.Options) { o.Auth, o.Region = env.Auth, env.Region })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := m.Bundle(ctx, ref); err != nil {
			t.Fatalf("fetching %s: %v", ref, err)
		}
	}
	for name, vars := range openrc {
		t.Run(name, func(t *testing.T) {
			clear()
			for k, v := range map[string]string{"OS_AUTH_URL": ks["OS_AUTH_URL"], "OS_USERNAME": ks["OS_USERNAME"], "OS_PASSWORD": ks["OS_PASSWORD"], "OS_REGION_NAME": "RegionOne"} {
				t.Setenv(k, v)
			}
			for k, v := range vars {
				t.Setenv(k, v)
			}
			fetch(t, "")
		})
	}
	t.Run("OS_CLOUD", func(t *testing.T) {
		clear()
		file := filepath.Join(t.TempDir(), "clouds.yaml")
		tu.WriteFile(t, filepath.Dir(file), "clouds.yaml", []byte(`clouds:
  test:
    region_name: RegionOne
    auth:
      auth_url: `+ks["OS_AUTH_URL"]+`
      username: `+ks["OS_USERNAME"]+`
      password: `+ks["OS_PASSWORD"]+`
      project_name: admin
      user_domain_name: Default
      project_domain_name: Default
`))
		t.Setenv("OS_CLIENT_CONFIG_FILE", file)
		t.Setenv("OS_CLOUD", "test")
		fetch(t, "")
	})
	t.Run("a user name without its domain", func(t *testing.T) {
		clear()
		t.Setenv("OS_AUTH_URL", ks["OS_AUTH_URL"])
		t.Setenv("OS_USERNAME", "admin")
		t.Setenv("OS_PROJECT_ID", "x")
		_, _, err := barbican.AuthFromEnvironment("", os.Getenv)
		if err == nil || !strings.Contains(err.Error(), "OS_USER_DOMAIN_NAME or OS_USER_DOMAIN_ID") {
			t.Fatalf("%v; want a message naming the missing variables", err)
		}
	})
}
