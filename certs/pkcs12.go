package certs

import (
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// MaxPKCS12DecodeTime bounds how long a caller waits for one PKCS#12
// bundle. checkPKCS12KDF bounds every parameter it can see; a key bag
// hidden inside an encrypted safe shows its parameters only once the safe
// is decrypted, so the decode itself is timed as well. Bundles that real
// tools write decode in milliseconds.
const MaxPKCS12DecodeTime = 10 * time.Second

// overruns counts decodes that ran past MaxPKCS12DecodeTime and are still
// finishing. While there is one, new PKCS#12 bundles are refused at once
// instead of piling up more such work, so no bundle can stall reloads,
// certificate uploads or shutdown, nor take more than the cores it had.
var overruns atomic.Int32

// pkcs12DecodeTime is MaxPKCS12DecodeTime, shortened by tests.
var pkcs12DecodeTime = MaxPKCS12DecodeTime

// decodePKCS12 is pkcs12.DecodeChain within MaxPKCS12DecodeTime.
func decodePKCS12(data []byte, password string) (any, *x509.Certificate, []*x509.Certificate, error) {
	if overruns.Load() > 0 {
		return nil, nil, nil, fmt.Errorf("%w: another PKCS#12 bundle's key derivation is still running past %s; refusing this one until it ends",
			ErrKDFTooCostly, MaxPKCS12DecodeTime)
	}
	type result struct {
		key  any
		leaf *x509.Certificate
		cas  []*x509.Certificate
		err  error
	}
	done := make(chan result, 1)
	go func() { // ends when the decode ends
		var r result
		r.key, r.leaf, r.cas, r.err = pkcs12.DecodeChain(data, password)
		done <- r
	}()
	timer := time.NewTimer(pkcs12DecodeTime)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.key, r.leaf, r.cas, r.err
	case <-timer.C:
		overruns.Add(1)
		go func() { <-done; overruns.Add(-1) }() // counts the overrun until the decode ends
		return nil, nil, nil, fmt.Errorf("%w: decoding took longer than %s (a key bag inside an encrypted safe asks for too many iterations?)",
			ErrKDFTooCostly, pkcs12DecodeTime)
	}
}
