package certs

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
)

// Key-derivation limits. A bundle decides how much work its own decryption
// costs, so every parameter is checked before any key is derived, and a
// bundle beyond what real tools write is refused rather than trusted.
const (
	// MaxKDFIterations bounds PBKDF2, PKCS#12 PBE and MAC iteration counts:
	// OWASP's 2023 figure for PBKDF2-HMAC-SHA256, about 300 times OpenSSL
	// 3's default (2,048) and 60 times keytool's (10,000).
	MaxKDFIterations = 600_000
	// MaxScryptMemory bounds scrypt's 128·N·r bytes: OpenSSL's own default
	// limit (32 MiB), so OpenSSL cannot read a key beyond it either. Its
	// `pkcs8 -scrypt` default (N=16384, r=8) needs 16 MiB.
	MaxScryptMemory = 32 << 20
	// MaxScryptParallelism bounds scrypt's p (OpenSSL writes 1).
	MaxScryptParallelism = 16
	// maxSaltLen and maxKeyLen bound the other KDF inputs (tools use 8-64
	// byte salts and keys of at most 32 bytes).
	maxSaltLen = 1024
	maxKeyLen  = 64
	// maxSafes and maxBags bound the PKCS#12 structure that is walked
	// (OpenSSL writes 2 safes of 1 bag each for a key and its chain).
	maxSafes = 8
	maxBags  = 256
)

var (
	oidPBES2        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidPBMAC1       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
	oidScrypt       = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}
	oidPKCS12PBE    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1} // pbeWithSHAAnd*, the arc
	oidPBES1        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5}     // pbeWithMD5AndDES-CBC etc., the arc
	oidData         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncrypted    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidShroudedBag  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	bigMaxIteration = big.NewInt(MaxKDFIterations)
)

// checkKeyKDF checks the key-derivation parameters of a PKCS#8
// EncryptedPrivateKeyInfo before it is decrypted.
func checkKeyKDF(der []byte) error {
	var info struct {
		Algorithm pkix.AlgorithmIdentifier
		Data      []byte
	}
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return fmt.Errorf("%w: encrypted private key: %v", ErrUnreadable, err)
	}
	return checkAlgorithm("encrypted private key", info.Algorithm)
}

// checkPKCS12KDF walks a PKCS#12 bundle's structure and checks every
// key-derivation parameter it can see before anything is derived: the MAC
// (classic or PBMAC1), each encrypted safe and each shrouded key bag in a
// plain safe. Parameters inside an encrypted safe are only visible after
// decryption; decodePKCS12 bounds the time that can take.
func checkPKCS12KDF(der []byte) error {
	type contentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
	}
	var pfx struct {
		Version  int
		AuthSafe contentInfo
		MacData  struct {
			Mac struct {
				Algorithm pkix.AlgorithmIdentifier
				Digest    []byte
			}
			MacSalt    []byte
			Iterations *big.Int `asn1:"optional"`
		} `asn1:"optional"`
	}
	if _, err := asn1.Unmarshal(der, &pfx); err != nil {
		return fmt.Errorf("%w: not PEM, and not a readable PKCS#12 bundle: %v", ErrUnreadable, err)
	}
	mac := pfx.MacData
	if mac.Mac.Algorithm.Algorithm.Equal(oidPBMAC1) {
		if err := checkAlgorithm("PKCS#12 MAC", mac.Mac.Algorithm); err != nil {
			return err
		}
	} else if len(mac.Mac.Algorithm.Algorithm) > 0 {
		if err := checkIterations("PKCS#12 MAC", mac.Iterations); err != nil {
			return err
		}
		if err := checkSalt("PKCS#12 MAC", mac.MacSalt); err != nil {
			return err
		}
	}
	if !pfx.AuthSafe.ContentType.Equal(oidData) {
		return nil // the decoder refuses anything but password integrity
	}
	var safeBytes []byte
	if _, err := asn1.Unmarshal(pfx.AuthSafe.Content.Bytes, &safeBytes); err != nil {
		return fmt.Errorf("%w: PKCS#12 authenticated safe: %v", ErrUnreadable, err)
	}
	var safes []contentInfo
	if _, err := asn1.Unmarshal(safeBytes, &safes); err != nil {
		return fmt.Errorf("%w: PKCS#12 authenticated safe: %v", ErrUnreadable, err)
	}
	if len(safes) > maxSafes {
		return fmt.Errorf("%w: PKCS#12 bundle has %d safes (at most %d are read)", ErrUnreadable, len(safes), maxSafes)
	}
	for i, ci := range safes {
		where := fmt.Sprintf("PKCS#12 safe %d", i+1)
		switch {
		case ci.ContentType.Equal(oidEncrypted):
			var ed struct {
				Version int
				Info    struct {
					ContentType asn1.ObjectIdentifier
					Algorithm   pkix.AlgorithmIdentifier
					Content     asn1.RawValue `asn1:"tag:0,optional"`
				}
			}
			if _, err := asn1.Unmarshal(ci.Content.Bytes, &ed); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrUnreadable, where, err)
			}
			if err := checkAlgorithm(where, ed.Info.Algorithm); err != nil {
				return err
			}
		case ci.ContentType.Equal(oidData):
			var data []byte
			if _, err := asn1.Unmarshal(ci.Content.Bytes, &data); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrUnreadable, where, err)
			}
			if err := checkSafeBags(where, data); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSafeBags checks each shrouded key bag of a plain PKCS#12 safe.
func checkSafeBags(where string, data []byte) error {
	var bags []struct {
		ID         asn1.ObjectIdentifier
		Value      asn1.RawValue `asn1:"tag:0,explicit"`
		Attributes asn1.RawValue `asn1:"set,optional"`
	}
	if _, err := asn1.Unmarshal(data, &bags); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnreadable, where, err)
	}
	if len(bags) > maxBags {
		return fmt.Errorf("%w: %s has %d bags (at most %d are read)", ErrUnreadable, where, len(bags), maxBags)
	}
	for j, bag := range bags {
		if bag.ID.Equal(oidShroudedBag) {
			if err := checkKeyKDF(bag.Value.Bytes); err != nil {
				return fmt.Errorf("%s, bag %d: %w", where, j+1, err)
			}
		}
	}
	return nil
}

// checkAlgorithm checks the KDF parameters of an encryption or MAC
// algorithm identifier; algorithms without a KDF pass.
func checkAlgorithm(where string, ai pkix.AlgorithmIdentifier) error {
	oid := ai.Algorithm
	switch {
	case oid.Equal(oidPBES2), oid.Equal(oidPBMAC1):
		var p struct {
			KDF    pkix.AlgorithmIdentifier
			Scheme asn1.RawValue
		}
		if _, err := asn1.Unmarshal(ai.Parameters.FullBytes, &p); err != nil {
			return fmt.Errorf("%w: %s: PBES2/PBMAC1 parameters: %v", ErrUnreadable, where, err)
		}
		return checkKDF(where, p.KDF)
	case inArc(oid, oidPKCS12PBE), inArc(oid, oidPBES1):
		var p struct {
			Salt       []byte
			Iterations *big.Int
		}
		if _, err := asn1.Unmarshal(ai.Parameters.FullBytes, &p); err != nil {
			return fmt.Errorf("%w: %s: PBE parameters: %v", ErrUnreadable, where, err)
		}
		if err := checkSalt(where, p.Salt); err != nil {
			return err
		}
		return checkIterations(where, p.Iterations)
	}
	return nil
}

// checkKDF checks a PBKDF2 or scrypt parameter set.
func checkKDF(where string, kdf pkix.AlgorithmIdentifier) error {
	switch {
	case kdf.Algorithm.Equal(oidPBKDF2):
		var p struct {
			Salt       asn1.RawValue // OCTET STRING, or an AlgorithmIdentifier nobody uses
			Iterations *big.Int
			KeyLength  *big.Int      `asn1:"optional"`
			PRF        asn1.RawValue `asn1:"optional"`
		}
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return fmt.Errorf("%w: %s: PBKDF2 parameters: %v", ErrUnreadable, where, err)
		}
		if err := checkSalt(where, p.Salt.Bytes); err != nil {
			return err
		}
		if err := checkKeyLen(where, p.KeyLength); err != nil {
			return err
		}
		return checkIterations(where, p.Iterations)
	case kdf.Algorithm.Equal(oidScrypt):
		var p struct {
			Salt      []byte
			N, R, P   *big.Int
			KeyLength *big.Int `asn1:"optional"`
		}
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return fmt.Errorf("%w: %s: scrypt parameters: %v", ErrUnreadable, where, err)
		}
		if err := checkSalt(where, p.Salt); err != nil {
			return err
		}
		if err := checkKeyLen(where, p.KeyLength); err != nil {
			return err
		}
		return checkScrypt(where, p.N, p.R, p.P)
	}
	return fmt.Errorf("%w: %s: unsupported key-derivation function %v", ErrUnreadable, where, kdf.Algorithm)
}

func checkIterations(where string, n *big.Int) error {
	if n == nil {
		return nil // DEFAULT 1
	}
	if n.Sign() <= 0 || n.Cmp(bigMaxIteration) > 0 {
		return fmt.Errorf("%w: %s: key derivation asks for %s iterations; at most %d are accepted (OpenSSL writes 2048, keytool 10000)",
			ErrKDFTooCostly, where, n, MaxKDFIterations)
	}
	return nil
}

func checkScrypt(where string, n, r, p *big.Int) error {
	if n == nil || r == nil || p == nil || n.Sign() <= 0 || r.Sign() <= 0 || p.Sign() <= 0 {
		return fmt.Errorf("%w: %s: scrypt parameters must be positive", ErrUnreadable, where)
	}
	mem := new(big.Int).Mul(big.NewInt(128), new(big.Int).Mul(n, r))
	if mem.Cmp(big.NewInt(MaxScryptMemory)) > 0 {
		return fmt.Errorf("%w: %s: scrypt N=%s r=%s needs %s bytes; at most %d (32 MiB, OpenSSL's own limit) are accepted",
			ErrKDFTooCostly, where, n, r, mem, MaxScryptMemory)
	}
	if p.Cmp(big.NewInt(MaxScryptParallelism)) > 0 {
		return fmt.Errorf("%w: %s: scrypt p=%s; at most %d is accepted", ErrKDFTooCostly, where, p, MaxScryptParallelism)
	}
	return nil
}

func checkSalt(where string, salt []byte) error {
	if len(salt) > maxSaltLen {
		return fmt.Errorf("%w: %s: a %d-byte salt (at most %d)", ErrKDFTooCostly, where, len(salt), maxSaltLen)
	}
	return nil
}

func checkKeyLen(where string, n *big.Int) error {
	if n != nil && (n.Sign() <= 0 || n.Cmp(big.NewInt(maxKeyLen)) > 0) {
		return fmt.Errorf("%w: %s: a derived key of %s bytes (at most %d)", ErrKDFTooCostly, where, n, maxKeyLen)
	}
	return nil
}

// inArc reports whether oid lies below arc.
func inArc(oid, arc asn1.ObjectIdentifier) bool {
	return len(oid) > len(arc) && oid[:len(arc)].Equal(arc)
}
