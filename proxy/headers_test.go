package proxy

import (
	"net/http"
	"testing"
	"time"
)

func TestASN1Time(t *testing.T) {
	cases := map[time.Time]string{
		time.Date(2026, 11, 23, 19, 5, 9, 0, time.UTC): "261123190509Z",
		time.Date(1999, 1, 2, 3, 4, 5, 0, time.UTC):    "990102030405Z",
		time.Date(2051, 1, 2, 3, 4, 5, 0, time.UTC):    "20510102030405Z",
	}
	for in, want := range cases {
		if got := asn1Time(in); got != want {
			t.Errorf("asn1Time(%v) = %q, want %q", in, got, want)
		}
	}
}

func TestHeaderRulesParse(t *testing.T) {
	hsts := 600
	r := NewHeaderRules(map[string]string{
		"x-forwarded-for": "TRUE", "X-Forwarded-Port": "false", "X-SSL-Client-CN": "true", "X-Unknown": "true",
	}, &hsts, false, true)
	if !r.ForwardedFor || r.ForwardedPort || r.ForwardedProto {
		t.Fatalf("forwarded flags wrong: %+v", r)
	}
	if len(r.SSL) != 1 || r.SSL[0] != "X-Ssl-Client-Cn" {
		t.Fatalf("SSL headers %v", r.SSL)
	}
	if r.HSTS != "max-age=600; preload" {
		t.Fatalf("HSTS %q", r.HSTS)
	}
}

func BenchmarkHeaderRewrite(b *testing.B) {
	r := NewHeaderRules(map[string]string{"X-Forwarded-For": "true", "X-Forwarded-Port": "true", "X-Forwarded-Proto": "true"}, nil, false, false)
	ci := &connInfo{clientIP: "192.0.2.10", port: "443", proto: "https"}
	in := http.Header{
		"Host": {"shop.example"}, "User-Agent": {"bench"}, "Accept": {"*/*"},
		"X-Forwarded-For": {"203.0.113.1"}, "X-Ssl-Client-Cn": {"forged"},
	}
	b.ReportAllocs()
	for b.Loop() {
		out := in.Clone()
		r.apply(out, in, ci)
	}
}
