package lb

import (
	"testing"
)

func counts(p *Pool, n int) map[string]int {
	out := map[string]int{}
	for range n {
		if m := p.Next("192.0.2.1"); m != nil {
			out[m.Name]++
		} else {
			out["<none>"]++
		}
	}
	return out
}

func TestWeightedRoundRobin(t *testing.T) {
	p := NewPool(PoolSpec{Name: "p", Members: []MemberSpec{
		{Name: "a", Address: "10.0.0.1", Port: 80, Weight: 1, Enabled: true},
		{Name: "b", Address: "10.0.0.2", Port: 80, Weight: 3, Enabled: true},
		{Name: "zero", Address: "10.0.0.3", Port: 80, Weight: 0, Enabled: true},
		{Name: "down", Address: "10.0.0.4", Port: 80, Weight: 5, Enabled: false},
		{Name: "spare", Address: "10.0.0.5", Port: 80, Weight: 1, Enabled: true, Backup: true},
	}}, nil, nil)
	got := counts(p, 4000)
	if got["a"] != 1000 || got["b"] != 3000 || len(got) != 2 {
		t.Fatalf("distribution %v, want a=1000 b=3000 and nothing else", got)
	}
	// Smooth: b never runs more than its share in a row.
	seq := ""
	for range 8 {
		seq += p.Next("192.0.2.1").Name
	}
	for i := 0; i+3 < len(seq); i++ {
		if seq[i:i+4] == "bbbb" {
			t.Fatalf("not smooth: %s", seq)
		}
	}
}

func TestBackupServesOnlyWithoutPrimaries(t *testing.T) {
	p := NewPool(PoolSpec{Name: "p", Members: []MemberSpec{
		{Name: "primary", Address: "10.0.0.1", Port: 80, Weight: 1, Enabled: false},
		{Name: "spare", Address: "10.0.0.2", Port: 80, Weight: 1, Enabled: true, Backup: true},
	}}, nil, nil)
	if got := counts(p, 10); got["spare"] != 10 {
		t.Fatalf("with no primary up, the backup must serve: %v", got)
	}
	empty := NewPool(PoolSpec{Name: "p", Members: []MemberSpec{{Name: "off", Address: "10.0.0.1", Port: 80, Weight: 0, Enabled: true}}}, nil, nil)
	if empty.Next("192.0.2.1") != nil {
		t.Fatal("a pool whose only member has weight 0 returned a member")
	}
}

func TestSelectionDoesNotAllocate(t *testing.T) {
	p := NewPool(PoolSpec{Name: "p", Members: []MemberSpec{
		{Address: "10.0.0.1", Port: 80, Weight: 2, Enabled: true},
		{Address: "10.0.0.2", Port: 80, Weight: 1, Enabled: true},
	}}, nil, nil)
	if n := testing.AllocsPerRun(1000, func() { _ = p.Next("192.0.2.1") }); n != 0 {
		t.Fatalf("Next allocates %.1f times", n)
	}
}

func BenchmarkMemberSelection(b *testing.B) {
	specs := make([]MemberSpec, 50)
	for i := range specs {
		specs[i] = MemberSpec{Address: "10.0.0.1", Port: 1000 + i, Weight: 1 + i%5, Enabled: true}
	}
	p := NewPool(PoolSpec{Name: "p", Members: specs}, nil, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = p.Next("192.0.2.1")
		}
	})
}
