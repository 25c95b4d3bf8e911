// Package config is terminator's one configuration model.
//
// The object and field names are Octavia's v2 API names (listener, pool,
// member, default_tls_container_ref, sni_container_refs, insert_headers, …) so
// that the config file, the control API and the translation of Octavia's own
// configuration share one vocabulary and one validator.
//
// A Config is a plain value: Load and Parse decode it strictly (unknown fields
// are errors), apply Octavia's defaults and validate it, reporting every
// problem with its path (listeners[0].sni_container_refs[1]: …). Nothing in
// this package touches the network or the file system beyond reading the
// config file itself; certificate references are checked for form here and
// for content by the certificate managers.
package config
