package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/terminator-proxy/terminator/backends/barbican"
	"github.com/terminator-proxy/terminator/config"
	"github.com/terminator-proxy/terminator/metrics"
)

// wantBarbican reports whether Barbican refs can be served: a barbican
// section, or the standard OpenStack environment.
func wantBarbican(cfg *config.Config) bool {
	return cfg != nil && cfg.Barbican != nil || os.Getenv("OS_CLOUD") != "" || os.Getenv("OS_AUTH_URL") != ""
}

func newBarbican(ctx context.Context, bc config.Barbican, log *slog.Logger, mx *metrics.Metrics) (*barbican.Manager, error) {
	o := barbican.Options{
		Endpoint: bc.Endpoint, Region: bc.Region, Interface: bc.Interface,
		ProjectID: bc.ProjectID, UserID: bc.UserID,
		Recheck: time.Duration(bc.RecheckInterval) * time.Millisecond,
		Logger:  log.With("component", "barbican"),
	}
	read := func(field, path string) (string, error) {
		if path == "" {
			return "", nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("barbican.%s: %w", field, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	switch {
	case bc.AuthURL != "":
		ao := gophercloud.AuthOptions{
			IdentityEndpoint: bc.AuthURL, Username: bc.Username, DomainName: bc.UserDomainName,
			TenantName: bc.ProjectName, ApplicationCredentialID: bc.ApplicationCredentialID,
		}
		if bc.ProjectName != "" {
			ao.Scope = &gophercloud.AuthScope{ProjectName: bc.ProjectName, DomainName: bc.ProjectDomainName}
			ao.TenantName = ""
		}
		var err error
		if ao.Password, err = read("password_file", bc.PasswordFile); err != nil {
			return nil, err
		}
		if ao.ApplicationCredentialSecret, err = read("application_credential_secret_file", bc.ApplicationCredentialSecretFile); err != nil {
			return nil, err
		}
		if ao.TokenID, err = read("token_file", bc.TokenFile); err != nil {
			return nil, err
		}
		o.Auth = &ao
	case bc.Cloud != "" || bc.ProjectID == "":
		// What the openstack CLI would use: barbican.cloud or OS_CLOUD in
		// clouds.yaml, else an openrc's OS_* variables.
		env, found, err := barbican.AuthFromEnvironment(bc.Cloud, os.Getenv)
		if err != nil {
			return nil, fmt.Errorf("barbican: %w", err)
		}
		if found {
			o.Auth = env.Auth
			if o.Region == "" {
				o.Region = env.Region
			}
			if o.Interface == "" {
				o.Interface = env.Interface
			}
		}
	}
	if mx != nil {
		o.OnStatus = func(ref string, err error, since time.Time) {
			stale, s := 0.0, 0.0
			if err != nil {
				stale, s = 1, float64(since.Unix())
			}
			mx.SourceStale.WithLabelValues(ref).Set(stale)
			mx.SourceStaleSince.WithLabelValues(ref).Set(s)
		}
	}
	return barbican.New(ctx, o)
}
