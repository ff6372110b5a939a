package alloc

import (
	"fmt"
	"slices"
	"strings"

	"github.com/perceptron/docker-perceptron/internal/gpus"
)

// Pair scores, as go-gpuallocator's besteffort policy scores NVML's P2P link
// types: a set's score is the sum of the scores of all its pairs, so the
// best set is the one whose GPUs talk to each other fastest.
const (
	ScoreCrossSocket = 10  // different or unknown NUMA nodes: through the CPU interconnect
	ScoreSameNUMA    = 20  // same NUMA node: through the host bridge
	ScorePCIeSwitch  = 50  // same PCIe switch, see SamePCIeSwitch
	ScoreNVLink      = 100 // per NVLink between the two
)

// PairScore scores the link between two GPUs from what the inventory knows:
// NVLink (per link), else a shared PCIe switch (NVML's common ancestor, see
// gpus.Device.PCIePeers, or the same bus), else the NUMA node. It is the
// score Choose uses; ChooseScored takes another, for tests.
func PairScore(a, b gpus.Device) int {
	if n := max(count(a.NVLinkPeers, b.Index), count(b.NVLinkPeers, a.Index)); n > 0 {
		return n * ScoreNVLink
	}
	if slices.Contains(a.PCIePeers, b.Index) || slices.Contains(b.PCIePeers, a.Index) || SamePCIeSwitch(a.PCIBusID, b.PCIBusID) {
		return ScorePCIeSwitch
	}
	if a.NUMANode >= 0 && a.NUMANode == b.NUMANode && a.Known("numa") && b.Known("numa") {
		return ScoreSameNUMA
	}
	return ScoreCrossSocket
}

// SamePCIeSwitch is a weak, safe proxy for "behind the same PCIe switch": the
// two bus ids ("domain:bus:device.function") share domain and bus, so the GPUs
// hang off the same bridge. GPUs under one switch usually sit on sibling buses
// instead, which this misses; it never claims a switch that is not there.
func SamePCIeSwitch(a, b string) bool {
	pa, pb := busPrefix(a), busPrefix(b)
	return pa != "" && strings.EqualFold(pa, pb)
}

// busPrefix returns "domain:bus" of a PCI bus id, or "" if it is malformed.
func busPrefix(id string) string {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 || strings.Count(id, ":") != 2 {
		return ""
	}
	return id[:i]
}

func count(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// exhaustiveLimit bounds the combinations Choose scores one by one; beyond it
// Choose grows sets greedily. C(16,8) = 12870, so any choice among 16 GPUs is
// exhaustive.
const exhaustiveLimit = 100_000

// Choose picks n of the candidate GPUs (by gpus.Device.Index) and returns their
// indexes in ascending order. See ChooseScored; Choose scores pairs with
// PairScore.
func Choose(devices []gpus.Device, candidates []int, n int) ([]int, error) {
	return ChooseScored(devices, candidates, n, PairScore)
}

// ChooseScored picks n of the candidate GPUs, comparing sets by, in order:
//
//  1. connectivity: the sum of score over all pairs in the set (higher wins);
//  2. fragmentation: the sum of score between the set and the candidates left
//     behind (lower wins), so what stays free is as well connected as it can
//     be — a pair is taken from a broken NVLink group rather than out of a
//     whole one, and a single GPU from where it cuts the fewest links;
//  3. load: memory used (as a share of total) plus utilisation (lower wins);
//  4. the indexes themselves, lowest first, so the answer depends only on the
//     input, not its order.
//
// Fragmentation comes before load because candidates are already idle (see
// Assess): load only tells near-idle GPUs apart, while a split NVLink group
// costs every later multi-GPU job. Every combination is scored when there are
// few enough (always for 16 candidates or fewer); otherwise sets are grown
// greedily from each candidate. A nil score means PairScore.
func ChooseScored(devices []gpus.Device, candidates []int, n int, score func(a, b gpus.Device) int) ([]int, error) {
	if n < 1 {
		return nil, fmt.Errorf("cannot choose %d GPUs", n)
	}
	if score == nil {
		score = PairScore
	}
	byIndex := make(map[int]gpus.Device, len(devices))
	for _, d := range devices {
		byIndex[d.Index] = d
	}
	idx := slices.Clone(candidates)
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		if _, ok := byIndex[i]; !ok {
			return nil, fmt.Errorf("candidate GPU %d is not in the inventory", i)
		}
	}
	if len(idx) < n {
		return nil, &NotEnoughError{Asked: n, Free: len(idx), Total: len(devices)}
	}

	p := newProblem(byIndex, idx, score)
	var best []int
	if binomial(len(idx), n) <= exhaustiveLimit {
		best = p.exhaustive(n)
	} else {
		best = p.greedy(n)
	}
	out := make([]int, n)
	for k, i := range best {
		out[k] = idx[i]
	}
	return out, nil
}

// problem holds the candidates' pairwise scores; sets are positions in idx.
type problem struct {
	m      int
	pair   [][]int // pair[i][j], symmetric, 0 on the diagonal
	rowSum []int   // rowSum[i] = Σ_j pair[i][j]
	load   []int
}

// key orders sets: better is higher score, then lower cut, lower load.
type key struct{ score, cut, load int }

func (a key) better(b key) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	if a.cut != b.cut {
		return a.cut < b.cut
	}
	return a.load < b.load
}

func newProblem(byIndex map[int]gpus.Device, idx []int, score func(a, b gpus.Device) int) *problem {
	m := len(idx)
	p := &problem{m: m, pair: make([][]int, m), rowSum: make([]int, m), load: make([]int, m)}
	for i := range m {
		p.pair[i] = make([]int, m)
		p.load[i] = load(byIndex[idx[i]])
	}
	for i := range m {
		for j := i + 1; j < m; j++ {
			// Score in index order only, so a lopsided score function
			// cannot make the answer depend on the input order.
			s := score(byIndex[idx[i]], byIndex[idx[j]])
			p.pair[i][j], p.pair[j][i] = s, s
			p.rowSum[i] += s
			p.rowSum[j] += s
		}
	}
	return p
}

// load is memory used in per cent of total, plus utilisation in per cent.
func load(d gpus.Device) int {
	l := d.UtilizationPercent
	if d.MemoryTotalMiB > 0 {
		l += int(d.MemoryUsedMiB * 100 / d.MemoryTotalMiB)
	}
	return l
}

// keyOf scores set s: the cut is Σ rowSum over s minus the pairs counted
// twice inside s.
func (p *problem) keyOf(s []int) key {
	var k key
	rows := 0
	for a, i := range s {
		rows += p.rowSum[i]
		k.load += p.load[i]
		for _, j := range s[a+1:] {
			k.score += p.pair[i][j]
		}
	}
	k.cut = rows - 2*k.score
	return k
}

// exhaustive walks all n-subsets of 0..m-1 in lexicographic order, so the
// first of equally good sets (the lowest indexes) is kept.
func (p *problem) exhaustive(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	best, bestKey := slices.Clone(s), p.keyOf(s)
	for {
		// Advance to the next combination.
		i := n - 1
		for i >= 0 && s[i] == p.m-n+i {
			i--
		}
		if i < 0 {
			return best
		}
		s[i]++
		for j := i + 1; j < n; j++ {
			s[j] = s[j-1] + 1
		}
		if k := p.keyOf(s); k.better(bestKey) {
			best, bestKey = append(best[:0], s...), k
		}
	}
}

// greedy grows a set from each candidate in turn, each time adding the
// candidate that links best to the set so far, and keeps the best set.
func (p *problem) greedy(n int) []int {
	var best []int
	var bestKey key
	in := make([]bool, p.m)
	for seed := range p.m {
		clear(in)
		s := []int{seed}
		in[seed] = true
		gain := slices.Clone(p.pair[seed]) // link of each candidate to the set
		for len(s) < n {
			pick := -1
			for c := range p.m {
				if in[c] {
					continue
				}
				if pick < 0 || gain[c] > gain[pick] ||
					gain[c] == gain[pick] && (p.rowSum[c] < p.rowSum[pick] ||
						p.rowSum[c] == p.rowSum[pick] && p.load[c] < p.load[pick]) {
					pick = c
				}
			}
			s = append(s, pick)
			in[pick] = true
			for c := range p.m {
				gain[c] += p.pair[pick][c]
			}
		}
		slices.Sort(s)
		k := p.keyOf(s)
		if best == nil || k.better(bestKey) || k == bestKey && slices.Compare(s, best) < 0 {
			best, bestKey = s, k
		}
	}
	return best
}

// binomial returns C(m, n), saturating above exhaustiveLimit.
func binomial(m, n int) int {
	n = min(n, m-n)
	c := 1
	for i := 1; i <= n; i++ {
		c = c * (m - n + i) / i
		if c > exhaustiveLimit {
			return exhaustiveLimit + 1
		}
	}
	return c
}
