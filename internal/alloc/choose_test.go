package alloc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

// dgx returns 8 GPUs in two NVLink quads, {0,1,2,3} on NUMA node 0 and
// {4,5,6,7} on node 1, each GPU on its own PCI bus.
func dgx() []gpus.Device {
	devs := make([]gpus.Device, 8)
	for i := range devs {
		q := i / 4 * 4
		var peers []int
		for p := q; p < q+4; p++ {
			if p != i {
				peers = append(peers, p)
			}
		}
		devs[i] = gpus.Device{
			Index: i, UUID: fmt.Sprintf("GPU-%d", i), PCIBusID: fmt.Sprintf("00000000:%02X:00.0", 0x10+i),
			MemoryTotalMiB: 81920, NUMANode: i / 4, NVLinkPeers: peers,
		}
	}
	return devs
}

// plain returns n GPUs without NVLink; numa[i] is GPU i's NUMA node.
func plain(numa ...int) []gpus.Device {
	devs := make([]gpus.Device, len(numa))
	for i, node := range numa {
		devs[i] = gpus.Device{Index: i, PCIBusID: fmt.Sprintf("00000000:%02X:00.0", 0x10+i), MemoryTotalMiB: 24576, NUMANode: node}
	}
	return devs
}

func except(n int, busy ...int) []int {
	var c []int
	for i := range n {
		if !slices.Contains(busy, i) {
			c = append(c, i)
		}
	}
	return c
}

func TestChoose(t *testing.T) {
	doubleLink := plain(0, 0, 0, 0)
	doubleLink[0].NVLinkPeers, doubleLink[1].NVLinkPeers = []int{1}, []int{0}
	doubleLink[2].NVLinkPeers, doubleLink[3].NVLinkPeers = []int{3, 3}, []int{2, 2}

	loaded := plain(0, 0, 0)
	loaded[0].MemoryUsedMiB, loaded[0].UtilizationPercent = 900, 5
	loaded[1].UtilizationPercent = 3

	sameBus := plain(0, 0, 0, 0)
	sameBus[1].PCIBusID, sameBus[3].PCIBusID = "00000000:40:00.0", "00000000:40:01.0"

	sameSwitch := plain(0, 0, 0, 0) // NVML: 1 and 3 behind one PCIe switch
	sameSwitch[1].PCIePeers, sameSwitch[3].PCIePeers = []int{3}, []int{1}

	// NVML: 0 and 1 behind one PCIe switch; 2 and 3 joined by one NVLink.
	switchOrLink := plain(0, 0, 0, 0)
	switchOrLink[0].PCIePeers, switchOrLink[1].PCIePeers = []int{1}, []int{0}
	switchOrLink[2].NVLinkPeers, switchOrLink[3].NVLinkPeers = []int{3}, []int{2}

	unknownNUMA := plain(-1, -1, 0, 0)
	failedNUMA := plain(0, 0, 0)
	failedNUMA[0].Errors = map[string]string{"numa": "Not Supported"}

	tests := []struct {
		name       string
		devices    []gpus.Device
		candidates []int
		n          int
		want       []int
	}{
		{name: "dgx auto:2 takes a linked pair", devices: dgx(), candidates: except(8), n: 2, want: []int{0, 1}},
		{name: "dgx auto:4 takes a linked quad", devices: dgx(), candidates: except(8), n: 4, want: []int{0, 1, 2, 3}},
		{name: "dgx auto:8 takes all", devices: dgx(), candidates: except(8), n: 8, want: []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{name: "dgx auto:4 with a broken quad takes the whole one", devices: dgx(), candidates: except(8, 1), n: 4, want: []int{4, 5, 6, 7}},
		{name: "dgx auto:2 finishes the broken quad (first)", devices: dgx(), candidates: except(8, 0, 1), n: 2, want: []int{2, 3}},
		{name: "dgx auto:2 finishes the broken quad (second)", devices: dgx(), candidates: except(8, 4, 5), n: 2, want: []int{6, 7}},
		{name: "dgx auto:3 finishes the broken quad", devices: dgx(), candidates: except(8, 0), n: 3, want: []int{1, 2, 3}},
		{name: "dgx auto:1 all free takes the lowest", devices: dgx(), candidates: except(8), n: 1, want: []int{0}},
		{name: "dgx auto:1 from the most fragmented quad", devices: dgx(), candidates: except(8, 4, 5), n: 1, want: []int{6}},
		{name: "dgx auto:1 from the quad with one busy", devices: dgx(), candidates: except(8, 7), n: 1, want: []int{4}},
		{name: "dgx auto:1 takes a GPU whose peers are all busy", devices: dgx(), candidates: except(8, 0, 1, 2, 4), n: 1, want: []int{3}},
		{name: "dgx auto:2 across quads when no pair is linked", devices: dgx(), candidates: []int{0, 5}, n: 2, want: []int{0, 5}},
		{name: "NUMA without NVLink", devices: plain(0, 1, 0, 1), candidates: except(4), n: 2, want: []int{0, 2}},
		{name: "NUMA without NVLink, one busy", devices: plain(0, 1, 0, 1), candidates: except(4, 0), n: 2, want: []int{1, 3}},
		{name: "NUMA auto:1 leaves a same-node pair", devices: plain(0, 0, 1, 1), candidates: except(4, 2), n: 1, want: []int{3}},
		{name: "unknown NUMA is not the same node", devices: unknownNUMA, candidates: []int{0, 1, 2, 3}, n: 2, want: []int{2, 3}},
		{name: "failed NUMA query is not the same node", devices: failedNUMA, candidates: []int{0, 1, 2}, n: 2, want: []int{1, 2}},
		{name: "shared PCI bus beats NUMA", devices: sameBus, candidates: except(4), n: 2, want: []int{1, 3}},
		{name: "NVML's shared PCIe switch beats NUMA", devices: sameSwitch, candidates: except(4), n: 2, want: []int{1, 3}},
		{name: "two NVLinks beat one", devices: doubleLink, candidates: except(4), n: 2, want: []int{2, 3}},
		{name: "one NVLink beats a PCIe switch", devices: switchOrLink, candidates: except(4), n: 2, want: []int{2, 3}},
		{name: "every combination, where growing a set is misled", devices: greedyTrap(), candidates: except(6), n: 4, want: []int{0, 1, 2, 5}},
		{name: "least loaded", devices: loaded, candidates: except(3), n: 1, want: []int{2}},
		{name: "least loaded pair", devices: loaded, candidates: except(3), n: 2, want: []int{1, 2}},
		{name: "duplicate candidates", devices: dgx(), candidates: []int{5, 5, 4}, n: 2, want: []int{4, 5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Choose(tc.devices, tc.candidates, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Choose() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestChooseErrors(t *testing.T) {
	tests := []struct {
		name       string
		candidates []int
		n          int
		is         error
		msg        string
	}{
		{name: "not enough", candidates: []int{0, 1, 2}, n: 4, is: ErrNotEnough, msg: "4 asked for, 3 free"},
		{name: "none", candidates: nil, n: 1, is: ErrNotEnough, msg: "1 asked for, 0 free"},
		{name: "duplicates count once", candidates: []int{1, 1}, n: 2, is: ErrNotEnough},
		{name: "zero", candidates: []int{0}, n: 0, msg: "cannot choose 0"},
		{name: "unknown index", candidates: []int{0, 9}, n: 1, msg: "GPU 9 is not in the inventory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Choose(dgx(), tc.candidates, tc.n)
			if err == nil {
				t.Fatalf("Choose() = %v, want an error", got)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestChooseDeterministic(t *testing.T) {
	devs := big(16)
	// Equal loads and symmetric links give many ties.
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 4, 8} {
		cands := except(16, 3, 9)
		want, err := Choose(devs, cands, n)
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			d, c := slices.Clone(devs), slices.Clone(cands)
			rng.Shuffle(len(d), func(i, j int) { d[i], d[j] = d[j], d[i] })
			rng.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
			got, err := Choose(d, c, n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("n=%d: shuffled input chose %v, want %v", n, got, want)
			}
		}
	}
}

// TestChooseLopsidedScore checks a score function that is not symmetric
// cannot make the choice depend on the input order.
func TestChooseLopsidedScore(t *testing.T) {
	lopsided := func(a, b gpus.Device) int { return a.Index*10 + b.Index }
	devs := plain(0, 0, 0, 0)
	want, err := ChooseScored(devs, []int{0, 1, 2, 3}, 2, lopsided)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ChooseScored(devs, []int{3, 2, 1, 0}, 2, lopsided)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 2 || !slices.Equal(got, want) {
		t.Errorf("reversed input chose %v, want %v", got, want)
	}
}

// greedyTrap is six GPUs where growing a set from each GPU in turn (greedy)
// takes 1, 3, 4 and 5, one NVLink and five same-node pairs (score 200),
// while 0, 1, 2 and 5 connect best: two NVLink pairs, 0–2 on NUMA node 1 and
// 1–5 on node 0 (240).
func greedyTrap() []gpus.Device {
	devs := plain(1, 0, 1, 0, 0, 0)
	devs[0].NVLinkPeers, devs[2].NVLinkPeers = []int{2}, []int{0}
	devs[1].NVLinkPeers, devs[5].NVLinkPeers = []int{5}, []int{1}
	return devs
}

// TestGreedyTrapIsATrap keeps greedyTrap honest: greedy alone is wrong there.
func TestGreedyTrapIsATrap(t *testing.T) {
	byIndex := map[int]gpus.Device{}
	for _, d := range greedyTrap() {
		byIndex[d.Index] = d
	}
	p := newProblem(byIndex, except(6), PairScore)
	if got := p.greedy(4); slices.Equal(got, []int{0, 1, 2, 5}) {
		t.Fatalf("greedy finds %v too: the fixture no longer tells the two apart", got)
	}
}

// big returns n GPUs in NVLink octets (fully linked), two octets per NUMA node.
func big(n int) []gpus.Device {
	devs := make([]gpus.Device, n)
	for i := range devs {
		o := i / 8 * 8
		var peers []int
		for p := o; p < min(o+8, n); p++ {
			if p != i {
				peers = append(peers, p)
			}
		}
		devs[i] = gpus.Device{Index: i, PCIBusID: fmt.Sprintf("00000000:%02X:00.0", i+1), MemoryTotalMiB: 81920, NUMANode: i / 16, NVLinkPeers: peers}
	}
	return devs
}

func TestChooseGreedy(t *testing.T) {
	tests := []struct {
		name       string
		devices    []gpus.Device
		candidates []int
		n          int
		want       []int
	}{
		{name: "the octet alone on its NUMA node", devices: big(24), candidates: except(24), n: 8, want: []int{16, 17, 18, 19, 20, 21, 22, 23}},
		{name: "the only whole octet", devices: big(24), candidates: except(24, 0, 9), n: 8, want: []int{16, 17, 18, 19, 20, 21, 22, 23}},
		{name: "a broken octet for a smaller job", devices: big(32), candidates: except(32, 0, 1, 2), n: 5, want: []int{3, 4, 5, 6, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if binomial(len(tc.candidates), tc.n) <= exhaustiveLimit {
				t.Fatalf("C(%d,%d) is within the exhaustive limit", len(tc.candidates), tc.n)
			}
			got, err := Choose(tc.devices, tc.candidates, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Choose() = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestGreedyMatchesExhaustive compares the two on random small machines: the
// greedy set may differ but must not connect worse on these simple topologies.
func TestGreedyMatchesExhaustive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 50 {
		devs := big(16)
		var cands []int
		for i := range 16 {
			if rng.IntN(3) > 0 {
				cands = append(cands, i)
			}
		}
		n := 1 + rng.IntN(max(1, len(cands)))
		if n > len(cands) {
			continue
		}
		byIndex := map[int]gpus.Device{}
		for _, d := range devs {
			byIndex[d.Index] = d
		}
		p := newProblem(byIndex, cands, PairScore)
		ex, gr := p.keyOf(p.exhaustive(n)), p.keyOf(p.greedy(n))
		if gr.score < ex.score {
			t.Errorf("trial %d: candidates %v n=%d: greedy score %d < exhaustive %d", trial, cands, n, gr.score, ex.score)
		}
	}
}

func TestSamePCIeSwitch(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"00000000:18:00.0", "00000000:18:01.0", true},
		{"00000000:18:00.0", "00000000:18:00.0", true},
		{"00000000:3b:00.0", "00000000:3B:01.0", true},
		{"00000000:18:00.0", "00000000:19:00.0", false},
		{"00000000:18:00.0", "00000001:18:00.0", false},
		{"", "", false},
		{"garbage", "garbage", false},
		{"18:00.0", "18:00.0", false},
	}
	for _, tc := range tests {
		if got := SamePCIeSwitch(tc.a, tc.b); got != tc.want {
			t.Errorf("SamePCIeSwitch(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestBinomial(t *testing.T) {
	for _, tc := range []struct{ m, n, want int }{{16, 8, 12870}, {16, 4, 1820}, {8, 0, 1}, {8, 8, 1}, {5, 2, 10}, {64, 32, exhaustiveLimit + 1}} {
		if got := binomial(tc.m, tc.n); got != tc.want {
			t.Errorf("binomial(%d, %d) = %d, want %d", tc.m, tc.n, got, tc.want)
		}
	}
}

func BenchmarkChoose(b *testing.B) {
	devs := big(16)
	for _, n := range []int{4, 8} {
		b.Run(fmt.Sprintf("16GPUs/N=%d", n), func(b *testing.B) {
			cands := except(16)
			for b.Loop() {
				if _, err := Choose(devs, cands, n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
