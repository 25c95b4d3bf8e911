package barbican

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
)

// Environment describes how to reach Keystone from the standard OpenStack
// client settings, as the openstack CLI reads them.
type Environment struct {
	Auth   *gophercloud.AuthOptions
	Region string
	// Interface is the endpoint interface (public, internal, admin).
	Interface string
}

// AuthFromEnvironment returns Keystone credentials the way the openstack
// CLI finds them: the clouds.yaml entry cloud names (when empty, the one
// OS_CLOUD names), or else the OS_* variables of an openrc file. getenv is
// os.Getenv outside tests. found is false when neither is set.
func AuthFromEnvironment(cloud string, getenv func(string) string) (env Environment, found bool, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if cloud != "" || getenv("OS_CLOUD") != "" {
		var opts []clouds.ParseOption
		if cloud != "" { // an empty name would override OS_CLOUD
			opts = append(opts, clouds.WithCloudName(cloud))
		}
		ao, eo, _, err := clouds.Parse(opts...)
		if err != nil {
			name := cloud
			if name == "" {
				name = getenv("OS_CLOUD") + " (OS_CLOUD)"
			}
			return env, true, fmt.Errorf("clouds.yaml entry %s: %w", name, err)
		}
		return Environment{Auth: &ao, Region: eo.Region, Interface: string(eo.Availability)}, true, nil
	}
	if getenv("OS_AUTH_URL") == "" {
		return env, false, nil
	}
	ao, err := authFromOSVars(getenv)
	if err != nil {
		return env, true, fmt.Errorf("OS_* environment: %w", err)
	}
	return Environment{Auth: ao, Region: getenv("OS_REGION_NAME"), Interface: strings.TrimSuffix(getenv("OS_INTERFACE"), "URL")}, true, nil
}

// authFromOSVars reads an openrc's variables as keystoneauth does: the
// user's domain (OS_USER_DOMAIN_*), the project and its domain
// (OS_PROJECT_* and OS_PROJECT_DOMAIN_*, OS_TENANT_* for v2-era files),
// OS_DEFAULT_DOMAIN_* for both, OS_DOMAIN_* for both too when no more
// specific one is set (as gophercloud reads it) or else a domain scope, system
// scope, application credentials and tokens. gophercloud's own
// AuthOptionsFromEnv knows none of the per-role domains.
func authFromOSVars(getenv func(string) string) (*gophercloud.AuthOptions, error) {
	first := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	ao := &gophercloud.AuthOptions{
		IdentityEndpoint:            getenv("OS_AUTH_URL"),
		Username:                    getenv("OS_USERNAME"),
		UserID:                      getenv("OS_USER_ID"),
		Password:                    getenv("OS_PASSWORD"),
		Passcode:                    getenv("OS_PASSCODE"),
		TokenID:                     getenv("OS_TOKEN"),
		ApplicationCredentialID:     getenv("OS_APPLICATION_CREDENTIAL_ID"),
		ApplicationCredentialName:   getenv("OS_APPLICATION_CREDENTIAL_NAME"),
		ApplicationCredentialSecret: getenv("OS_APPLICATION_CREDENTIAL_SECRET"),
		AllowReauth:                 true,
	}
	// The user's domain matters only for a user named by name.
	if ao.UserID == "" && ao.Username != "" {
		if id := first("OS_USER_DOMAIN_ID", "OS_DEFAULT_DOMAIN_ID", "OS_DOMAIN_ID"); id != "" {
			ao.DomainID = id
		} else {
			ao.DomainName = first("OS_USER_DOMAIN_NAME", "OS_DEFAULT_DOMAIN_NAME", "OS_DOMAIN_NAME")
		}
	}
	if ao.ApplicationCredentialID != "" || ao.ApplicationCredentialName != "" {
		return ao, nil // the credential carries its own scope
	}
	scope := &gophercloud.AuthScope{}
	switch {
	case strings.EqualFold(getenv("OS_SYSTEM_SCOPE"), "all"):
		scope.System = true
	case first("OS_PROJECT_ID", "OS_TENANT_ID") != "":
		scope.ProjectID = first("OS_PROJECT_ID", "OS_TENANT_ID")
	case first("OS_PROJECT_NAME", "OS_TENANT_NAME") != "":
		scope.ProjectName = first("OS_PROJECT_NAME", "OS_TENANT_NAME")
		if id := first("OS_PROJECT_DOMAIN_ID", "OS_DEFAULT_DOMAIN_ID", "OS_DOMAIN_ID"); id != "" {
			scope.DomainID = id
		} else if name := first("OS_PROJECT_DOMAIN_NAME", "OS_DEFAULT_DOMAIN_NAME", "OS_DOMAIN_NAME"); name != "" {
			scope.DomainName = name
		} else {
			return nil, errors.New("OS_PROJECT_NAME needs OS_PROJECT_DOMAIN_NAME or OS_PROJECT_DOMAIN_ID (or OS_PROJECT_ID instead)")
		}
	case first("OS_DOMAIN_ID") != "":
		scope.DomainID = getenv("OS_DOMAIN_ID")
	case first("OS_DOMAIN_NAME") != "":
		scope.DomainName = getenv("OS_DOMAIN_NAME")
	default:
		scope = nil // unscoped: Keystone uses the user's default project
	}
	ao.Scope = scope
	if ao.Username != "" && ao.DomainID == "" && ao.DomainName == "" {
		return nil, errors.New("OS_USERNAME needs OS_USER_DOMAIN_NAME or OS_USER_DOMAIN_ID (or OS_USER_ID instead)")
	}
	return ao, nil
}
