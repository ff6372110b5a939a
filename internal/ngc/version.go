package ngc

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a dotted version as NVIDIA writes driver and CUDA versions:
// "550.54.15", "545", "12.4.1.003", "535.129.03". Parts compare as
// numbers; it prints as written.
type Version struct {
	parts []int
	text  string
}

// ParseVersion reads a dotted version of 1 to 4 numeric parts.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) > 4 {
		return Version{}, fmt.Errorf("invalid version %q: use numbers and dots, such as 550.54.15", s)
	}
	v := Version{parts: make([]int, len(parts)), text: strings.TrimSpace(s)}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || len(p) > 6 {
			return Version{}, fmt.Errorf("invalid version %q: use numbers and dots, such as 550.54.15", s)
		}
		v.parts[i] = n
	}
	return v, nil
}

// Compare is -1, 0 or +1 as v is older than, the same as, or newer than w;
// missing parts count as 0 ("545" is "545.0.0").
func (v Version) Compare(w Version) int {
	for i := range max(len(v.parts), len(w.parts)) {
		a, b := part(v, i), part(w, i)
		switch {
		case a < b:
			return -1
		case a > b:
			return 1
		}
	}
	return 0
}

func part(v Version, i int) int {
	if i < len(v.parts) {
		return v.parts[i]
	}
	return 0
}

// IsZero reports no version (unknown).
func (v Version) IsZero() bool { return len(v.parts) == 0 }

// Major is the driver branch (550 for 550.54.15); 0 for no version.
func (v Version) Major() int { return part(v, 0) }

func (v Version) String() string { return v.text }
