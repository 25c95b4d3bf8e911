package main

import "testing"

// Lines as perf report --stdio -q --sort dso,sym prints them for haproxy
// (OpenSSL, libc, the kernel) and for terminator (Go symbols, including
// assembly without a package prefix).
const perfSample = `
    30.43%  [kernel.kallsyms]  [k] pvm_irq_enable
     5.00%  libcrypto.so.3     [.] EVP_EncryptUpdate
     2.00%  libssl.so.3        [.] ssl3_read_bytes
     1.86%  libc.so.6          [.] epoll_wait
     1.24%  haproxy            [.] conn_install_mux_fe
     6.37%  terminator         [.] crypto/internal/fips140/edwards25519/field.feMul.abi0
     1.27%  terminator         [.] p256MulInternal
     1.27%  terminator         [.] runtime.mallocgcSmallNoscan
     1.00%  terminator         [.] internal/runtime/syscall/linux.Syscall6
     0.70%  terminator         [.] syscall.RawSyscall6
     0.60%  terminator         [.] aeshashbody
     0.53%  terminator         [.] github.com/terminator-proxy/terminator/proxy.(*h1conn).readRequest
     0.53%  [vdso]             [.] 0x000000000000079d
     0.40%  [unknown]          [.] 0x00007f3a
`

func TestPerfCategories(t *testing.T) {
	syms := parsePerf([]byte(perfSample))
	if len(syms) != 14 {
		t.Fatalf("parsed %d lines, want 14: %+v", len(syms), syms)
	}
	want := map[string]float64{
		catKernel:  30.43,
		catCrypto:  5.00 + 2.00 + 6.37 + 1.27,
		catLibc:    1.86 + 1.00 + 0.70 + 0.53,
		catProxy:   1.24 + 0.53,
		catRuntime: 1.27 + 0.60,
		catUnknown: 0.40,
	}
	got := categorize(syms)
	for c, w := range want {
		if d := got[c] - w; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: %.2f%%, want %.2f%%", c, got[c], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("categories %v, want %v", got, want)
	}
}
