package certs

import "time"

// SetPKCS12DecodeTime changes the decode time bound for a test.
func SetPKCS12DecodeTime(d time.Duration) (restore func()) {
	old := pkcs12DecodeTime
	pkcs12DecodeTime = d
	return func() { pkcs12DecodeTime = old }
}

// PKCS12Overruns is how many decodes past their bound are still running.
func PKCS12Overruns() int32 { return overruns.Load() }
