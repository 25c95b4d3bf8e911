package pki

import (
	"testing"
	"time"
)

func TestValidityCountsFromNow(t *testing.T) {
	ca, err := NewCA("ca", ECDSAP256, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []time.Duration{3 * time.Second, time.Hour, 12 * time.Hour} {
		c, _, err := ca.Issue(Request{CommonName: "x", Validity: v})
		if err != nil {
			t.Fatal(err)
		}
		left := time.Until(c.NotAfter)
		if left < v-2*time.Second || left > v {
			t.Errorf("validity %v: %v left", v, left)
		}
		if skew := time.Since(c.NotBefore); skew > time.Minute+time.Second || skew > v/10+time.Second {
			t.Errorf("validity %v: backdated by %v", v, skew)
		}
	}
	start := time.Now().Add(-48 * time.Hour)
	c, _, _ := ca.Issue(Request{CommonName: "old", NotBefore: start, Validity: time.Hour})
	if !c.NotAfter.Before(time.Now()) {
		t.Error("an explicit NotBefore must fix the validity window")
	}
}
