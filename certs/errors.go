package certs

import (
	"errors"
	"fmt"
)

// Causes a caller can branch on with errors.Is.
var (
	ErrNoCertificate    = errors.New("no certificate found")
	ErrNoKey            = errors.New("no private key found")
	ErrKeyMismatch      = errors.New("private key does not match the certificate")
	ErrChainBroken      = errors.New("intermediates do not link to the certificate")
	ErrNoHostName       = errors.New("certificate has no CN and no DNS subject alternative name")
	ErrNeedsPassphrase  = errors.New("private key is encrypted and no passphrase was given")
	ErrWrongPassphrase  = errors.New("wrong passphrase")
	ErrUnreadable       = errors.New("unreadable data")
	ErrKDFTooCostly     = errors.New("key derivation too costly")
	ErrNotFound         = errors.New("not found")
	ErrAccessDenied     = errors.New("access denied")
	ErrUnsupportedRef   = errors.New("no certificate manager for this reference")
	ErrNoCACertificates = errors.New("no CA certificate found")
	ErrCRLSignature     = errors.New("CRL is not signed by the client CA")
)

// RefError ties a failure to the reference it concerns. Its message reads
// "certificate ref REF: CAUSE".
type RefError struct {
	Ref string
	Err error
}

func (e *RefError) Error() string { return fmt.Sprintf("certificate ref %s: %v", e.Ref, e.Err) }
func (e *RefError) Unwrap() error { return e.Err }

// refErr wraps err for ref unless it already names a ref.
func refErr(ref string, err error) error {
	var re *RefError
	if err == nil || errors.As(err, &re) {
		return err
	}
	return &RefError{Ref: ref, Err: err}
}
