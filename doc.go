// Package terminator is the root of the terminator module: a TLS-terminating
// reverse proxy whose certificates come from files, Barbican or Vault. The
// binary is in cmd/terminator; README.md maps the packages.
package terminator
