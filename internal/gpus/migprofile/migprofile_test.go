package migprofile

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestName(t *testing.T) {
	tests := []struct {
		name            string
		g, c            uint32
		memMiB, totalMB uint64
		want            string
		gb              int
	}{
		// Sizes as A100 80GB and H100 80GB report them.
		{name: "A100 80GB 1g", g: 1, c: 1, memMiB: 9728, totalMB: 81920, want: "1g.10gb", gb: 10},
		{name: "A100 80GB 2g", g: 2, c: 2, memMiB: 19968, totalMB: 81920, want: "2g.20gb", gb: 20},
		{name: "A100 80GB 3g", g: 3, c: 3, memMiB: 40192, totalMB: 81920, want: "3g.40gb", gb: 40},
		{name: "A100 80GB 7g", g: 7, c: 7, memMiB: 80896, totalMB: 81920, want: "7g.80gb", gb: 80},
		{name: "A100 40GB 1g", g: 1, c: 1, memMiB: 4864, totalMB: 40960, want: "1g.5gb", gb: 5},
		{name: "H100 80GB 1g", g: 1, c: 1, memMiB: 9984, totalMB: 81559, want: "1g.10gb", gb: 10},
		{name: "compute instance smaller than its GPU instance", g: 3, c: 1, memMiB: 40192, totalMB: 81920, want: "1c.3g.40gb", gb: 40},
		{name: "GPU memory unknown", g: 1, c: 1, memMiB: 9728, totalMB: 0, want: "", gb: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name, gb := Name(tc.g, tc.c, tc.memMiB, tc.totalMB)
			assert.Equal(t, name, tc.want)
			assert.Equal(t, gb, tc.gb)
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		g, c uint32
		gb   int
		ok   bool
	}{
		{in: "1g.10gb", g: 1, c: 1, gb: 10, ok: true},
		{in: "3G.40GB", g: 3, c: 3, gb: 40, ok: true},
		{in: "1c.3g.40gb", g: 3, c: 1, gb: 40, ok: true},
		{in: "1g"},
		{in: "1g.10"},
		{in: "0g.10gb"},
		{in: "g.10gb"},
		{in: "1x.3g.40gb"},
		{in: "1g.10gb+me"},
		{in: ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			g, c, gb, ok := Parse(tc.in)
			assert.Equal(t, ok, tc.ok)
			assert.Equal(t, g, tc.g)
			assert.Equal(t, c, tc.c)
			assert.Equal(t, gb, tc.gb)
		})
	}
}
