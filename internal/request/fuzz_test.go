package request

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseGPUs: the --gpus parser never panics, takes for its own exactly
// auto, auto:N (N ≥ 1) and none, leaves the rest to docker unchanged, and
// says what was wrong in one short line.
func FuzzParseGPUs(f *testing.F) {
	for _, seed := range []string{"auto", "auto:2", "auto:0", "auto:-1", "auto:", "none", "all", "2", `"device=0,1"`, "auto:99999999999999999999", strings.Repeat("x", 5000)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		g, err := ParseGPUs(value)
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 200 {
				t.Fatalf("error of %d bytes or lines: %q", len(msg), msg)
			}
			if !strings.HasPrefix(value, "auto:") {
				t.Fatalf("%q refused: %v", value, err)
			}
			return
		}
		switch {
		case value == "none":
			if !g.None || g.Auto != 0 || g.Docker != "" {
				t.Fatalf("none: %+v", g)
			}
		case value == "auto":
			if g.Auto != 1 {
				t.Fatalf("auto: %+v", g)
			}
		case strings.HasPrefix(value, "auto:"):
			if n, err := strconv.Atoi(value[len("auto:"):]); err != nil || n != g.Auto || n < 1 {
				t.Fatalf("%q: %+v", value, g)
			}
		default:
			if g.Docker != value || g.Own() {
				t.Fatalf("%q is docker's: %+v", value, g)
			}
		}
	})
}
