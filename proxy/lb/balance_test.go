package lb

import (
	"fmt"
	"testing"
)

func members(n int, weights ...int) []MemberSpec {
	out := make([]MemberSpec, n)
	for i := range out {
		w := 1
		if i < len(weights) {
			w = weights[i]
		}
		out[i] = MemberSpec{Name: fmt.Sprintf("m%d", i), Address: fmt.Sprintf("10.0.0.%d", i+1), Port: 80, Weight: w, Enabled: true}
	}
	return out
}

func clients(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("198.51.%d.%d", i/250, i%250)
	}
	return out
}

func TestSourceIPStableAndMinimalMovement(t *testing.T) {
	ips := clients(20000)
	before := NewPool(PoolSpec{Name: "p", Algorithm: SourceIP, Members: members(3)}, nil, nil)
	again := NewPool(PoolSpec{Name: "p", Algorithm: SourceIP, Members: members(3)}, nil, nil)
	after := NewPool(PoolSpec{Name: "p", Algorithm: SourceIP, Members: members(4)}, nil, nil)
	moved := 0
	for _, ip := range ips {
		b := before.Next(ip).Name
		if again.Next(ip).Name != b || before.Next(ip).Name != b {
			t.Fatalf("%s is not stable", ip)
		}
		if a := after.Next(ip).Name; a != b {
			moved++
			if a != "m3" {
				t.Fatalf("%s moved from %s to %s, not to the new member", ip, b, a)
			}
		}
	}
	frac := float64(moved) / float64(len(ips))
	t.Logf("%d of %d clients (%.1f%%) moved when a 4th member joined", moved, len(ips), 100*frac)
	if frac < 0.22 || frac > 0.28 {
		t.Fatalf("%.1f%% of clients moved when a 4th member joined, want about 25%%", 100*frac)
	}
}

func TestSourceIPWeights(t *testing.T) {
	p := NewPool(PoolSpec{Name: "p", Algorithm: SourceIP, Members: members(2, 1, 3)}, nil, nil)
	n := map[string]int{}
	for _, ip := range clients(20000) {
		n[p.Next(ip).Name]++
	}
	if share := float64(n["m1"]) / 20000; share < 0.72 || share > 0.78 {
		t.Fatalf("weight 3 of 4 got %.1f%% of clients, want about 75%%", 100*share)
	}
}

func TestLeastConnections(t *testing.T) {
	states := NewStates()
	p := NewPool(PoolSpec{Name: "p", Algorithm: LeastConnections, Members: members(2)}, states, nil)
	a, b := p.members[0], p.members[1]
	seen := map[string]int{}
	for range 10 {
		seen[p.Next("").Name]++
	}
	if seen["m0"] != 5 || seen["m1"] != 5 {
		t.Fatalf("equal load must alternate: %v", seen)
	}
	a.state.active.Store(5)
	for range 10 {
		if p.Next("") != b {
			t.Fatal("the busier member was chosen")
		}
	}
	// Weighted: (active+1)/weight. m0 weight 4 with 3 active scores 1; m1
	// weight 1 with 1 active scores 2.
	w := NewPool(PoolSpec{Name: "w", Algorithm: LeastConnections, Members: members(2, 4, 1)}, states, nil)
	w.members[0].state.active.Store(3)
	w.members[1].state.active.Store(1)
	if w.Next("") != w.members[0] {
		t.Fatal("weights ignored")
	}
}

func TestStatesSurviveRebuilds(t *testing.T) {
	states := NewStates()
	p1 := NewPool(PoolSpec{Name: "p", Members: members(2)}, states, nil)
	p1.members[0].state.active.Store(7)
	p2 := NewPool(PoolSpec{Name: "p", Members: members(3)}, states, nil)
	if p2.members[0].state != p1.members[0].state || p2.members[0].state.Active() != 7 {
		t.Fatal("a rebuild reset an unchanged member's state")
	}
	states.Retain(map[string][]string{"p": {"10.0.0.2:80"}})
	p3 := NewPool(PoolSpec{Name: "p", Members: members(1)}, states, nil)
	if p3.members[0].state.Active() != 0 {
		t.Fatal("Retain kept a removed member's state")
	}
}

func TestBackupWithOtherAlgorithms(t *testing.T) {
	for _, alg := range []string{LeastConnections, SourceIP} {
		specs := members(2)
		specs[0].Enabled = false
		specs[1].Backup = true
		p := NewPool(PoolSpec{Name: "p", Algorithm: alg, Members: specs}, nil, nil)
		if m := p.Next("192.0.2.9"); m == nil || m.Name != "m1" {
			t.Fatalf("%s: with no primary up the backup must serve", alg)
		}
	}
}

func TestSelectionAllocatesNothing(t *testing.T) {
	for _, alg := range []string{RoundRobin, LeastConnections, SourceIP} {
		p := NewPool(PoolSpec{Name: "p", Algorithm: alg, Members: members(10)}, nil, nil)
		if n := testing.AllocsPerRun(1000, func() { _ = p.Next("203.0.113.77") }); n != 0 {
			t.Fatalf("%s allocates %.1f times per selection", alg, n)
		}
	}
}

func BenchmarkSelection(b *testing.B) {
	ips := clients(1024)
	for _, alg := range []string{RoundRobin, LeastConnections, SourceIP} {
		b.Run(alg, func(b *testing.B) {
			p := NewPool(PoolSpec{Name: "p", Algorithm: alg, Members: members(10, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1)}, nil, nil)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				_ = p.Next(ips[i&1023])
			}
		})
	}
}
