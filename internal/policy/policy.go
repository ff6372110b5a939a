// Package policy reads the site's policy for the GPUs of a shared host: an
// administrator's file that caps how many GPUs one user may hold through
// --gpus auto, how long an idle reservation keeps blocking others, and the
// default thresholds of a free GPU. The decisions that use it live in
// internal/alloc; this package only reads and trusts (or not) the file.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	units "github.com/docker/go-units"
	"go.yaml.in/yaml/v3"
)

// DefaultPath is where the administrator writes the policy.
const DefaultPath = "/etc/docker/perceptron/policy.yaml"

// maxSize bounds the file: a policy is a few lines.
const maxSize = 1 << 20

// ErrIgnored is wrapped by Load's error when the file exists but is not used:
// not safe to trust, or not valid. The error says why and what to do.
var ErrIgnored = errors.New("site policy ignored")

// Policy is the site's policy. The zero value is no policy: no limit.
type Policy struct {
	// Path is the file it was read from; "" for no policy.
	Path string
	// MaxGPUs caps the GPUs one user holds through --gpus auto.
	MaxGPUs Limits
	// MaxIdle: a reservation whose GPUs had no compute process for longer
	// no longer blocks others; 0 means reservations never expire.
	MaxIdle time.Duration
	// MaxMemoryMiB and MaxUtilPercent, when set, are the default
	// thresholds of a free GPU (--gpu-max-memory, --gpu-max-util).
	MaxMemoryMiB   *uint64
	MaxUtilPercent *int
}

// Limits are the most GPUs one user may hold: per user, per Unix group, and
// a default for everyone else; nil Default is no limit.
type Limits struct {
	Default *int
	Users   map[string]int
	Groups  map[string]int
}

// Limit is the cap that applies to one user, and the rule it comes from.
type Limit struct {
	GPUs int
	Rule string // "user alice", "group phd", "default"
}

// LimitFor is the cap on user, a member of groups: the user's own entry,
// else the largest of the user's groups' entries, else the default; ok is
// false when none applies.
func (p Policy) LimitFor(user string, groups []string) (l Limit, ok bool) {
	if n, found := p.MaxGPUs.Users[user]; found {
		return Limit{GPUs: n, Rule: "user " + user}, true
	}
	best := -1
	for _, g := range slices.Sorted(slices.Values(groups)) {
		if n, found := p.MaxGPUs.Groups[g]; found && n > best {
			best, l = n, Limit{GPUs: n, Rule: "group " + g}
		}
	}
	if best >= 0 {
		return l, true
	}
	if p.MaxGPUs.Default != nil {
		return Limit{GPUs: *p.MaxGPUs.Default, Rule: "default"}, true
	}
	return Limit{}, false
}

// Set reports whether there is a policy at all.
func (p Policy) Set() bool { return p.Path != "" }

// file is the policy file's format.
type file struct {
	MaxGPUs *struct {
		Default *int           `yaml:"default"`
		Users   map[string]int `yaml:"users"`
		Groups  map[string]int `yaml:"groups"`
	} `yaml:"max-gpus"`
	MaxIdle string `yaml:"max-idle"`
	Free    *struct {
		MaxMemory string `yaml:"max-memory"`
		MaxUtil   string `yaml:"max-util"`
	} `yaml:"free"`
}

// Load reads the policy at path. A missing file is no policy and no error.
// A file that anyone but root could have written (its owner, its mode, or
// its directory's), or that is not valid, is not used: Load returns no
// policy and an error wrapping ErrIgnored that says why.
func Load(path string) (Policy, error) {
	return load(path, 0)
}

// load is Load with the owner it trusts (tests, which may not run as root).
func load(path string, owner uint32) (Policy, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Policy{}, nil
	}
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %s: %w", ErrIgnored, path, err)
	}
	defer f.Close()
	if err := trusted(f, owner); err != nil {
		return Policy{}, fmt.Errorf("%w: %s %w", ErrIgnored, path, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %s: %w", ErrIgnored, path, err)
	}
	if len(data) > maxSize {
		return Policy{}, fmt.Errorf("%w: %s is larger than 1 MiB", ErrIgnored, path)
	}
	p, err := parse(data)
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %s: %w", ErrIgnored, path, err)
	}
	p.Path = path
	return p, nil
}

// trusted checks that only owner (root) could have written the open file f
// or replaced it in its directory.
func trusted(f *os.File, owner uint32) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New("is not a regular file")
	}
	if err := writableOnlyBy(fi, owner); err != nil {
		return fmt.Errorf("%w; make it owned by root and not writable by others (chown root:root, chmod 644)", err)
	}
	dir := filepath.Dir(f.Name())
	di, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := writableOnlyBy(di, owner); err != nil {
		return fmt.Errorf("is in directory %s, which %w; make it owned by root and not writable by others (chmod 755)", dir, err)
	}
	return nil
}

func writableOnlyBy(fi os.FileInfo, owner uint32) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("has an unknown owner")
	}
	if st.Uid != owner {
		return fmt.Errorf("is owned by uid %d, not root", st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("is writable by others (mode %#o)", fi.Mode().Perm())
	}
	return nil
}

// parse reads the policy's text: unknown keys, negative limits and bad
// durations or sizes are errors, naming the key.
func parse(data []byte) (Policy, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return Policy{}, fmt.Errorf("invalid YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var p Policy
	if m := f.MaxGPUs; m != nil {
		p.MaxGPUs = Limits{Default: m.Default, Users: m.Users, Groups: m.Groups}
		if err := checkLimits(p.MaxGPUs); err != nil {
			return Policy{}, err
		}
	}
	if f.MaxIdle != "" {
		d, err := time.ParseDuration(f.MaxIdle)
		if err != nil || d <= 0 {
			return Policy{}, fmt.Errorf("invalid max-idle %q: use a duration such as 4h or 90m", f.MaxIdle)
		}
		p.MaxIdle = d
	}
	if fr := f.Free; fr != nil {
		if err := parseFree(&p, fr.MaxMemory, fr.MaxUtil); err != nil {
			return Policy{}, err
		}
	}
	return p, nil
}

func checkLimits(l Limits) error {
	if l.Default != nil && *l.Default < 0 {
		return fmt.Errorf("invalid max-gpus default %d: use 0 or more", *l.Default)
	}
	for kind, m := range map[string]map[string]int{"users": l.Users, "groups": l.Groups} {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if m[name] < 0 {
				return fmt.Errorf("invalid max-gpus %s %s: %d: use 0 or more", kind, name, m[name])
			}
		}
	}
	return nil
}

func parseFree(p *Policy, mem, util string) error {
	if mem != "" {
		b, err := units.RAMInBytes(mem)
		if err != nil || b < 0 {
			return fmt.Errorf("invalid free max-memory %q: use a size such as 1g or 512m", mem)
		}
		m := uint64(b) >> 20
		p.MaxMemoryMiB = &m
	}
	if util != "" {
		u, err := strconv.Atoi(strings.TrimSuffix(util, "%"))
		if err != nil || u < 0 || u > 100 {
			return fmt.Errorf("invalid free max-util %q: use a percentage from 0 to 100", util)
		}
		p.MaxUtilPercent = &u
	}
	return nil
}
