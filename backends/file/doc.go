// Package file is the certificate manager for file:// references.
//
// A reference names one file holding a PEM bundle (certificate, key and
// chain in any order; intermediates may be PKCS#7) or a PKCS#12 bundle:
//
//	file:///etc/terminator/certs/shop.pem
//	file:///etc/terminator/certs/shop.p12?passphrase_file=/etc/terminator/certs/shop.pass
//	file:///etc/terminator/certs/shop.crt?key=/etc/terminator/keys/shop.key&intermediates=/etc/terminator/certs/chain.pem
//
// A passphrase comes from passphrase_file, or else from a sibling file with
// the same base name and the extension .pass when one exists; that sibling is
// read (and watched) only for an encrypted key. When the named
// path does not exist but PATH.crt does, the reference uses the layout of
// Octavia's local cert manager: PATH.crt, PATH.key, optional PATH.int and
// PATH.pass.
//
// The manager watches the directories that hold referenced files (and the
// directories their symlinks resolve to), so editors' atomic replaces and
// Kubernetes ..data symlink swaps are seen; a periodic checksum rescan is the
// safety net. It notifies only when the content of a file it has read has
// really changed. A reference whose files all keep the metadata they had
// when it was read (device, inode, size, mtime, ctime) is served from the
// cache on the next load without reading them.
package file
