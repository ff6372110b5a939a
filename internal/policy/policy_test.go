package policy

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func intp(n int) *int { return &n }

func TestLimitFor(t *testing.T) {
	p := Policy{Path: "p", MaxGPUs: Limits{
		Default: intp(1),
		Users:   map[string]int{"alice": 4, "zero": 0},
		Groups:  map[string]int{"phd": 2, "postdoc": 3},
	}}
	tests := []struct {
		name   string
		user   string
		groups []string
		want   Limit
		ok     bool
	}{
		{name: "own entry wins over groups", user: "alice", groups: []string{"phd"}, want: Limit{GPUs: 4, Rule: "user alice"}, ok: true},
		{name: "an entry of 0 forbids", user: "zero", want: Limit{GPUs: 0, Rule: "user zero"}, ok: true},
		{name: "the largest group", user: "bob", groups: []string{"phd", "postdoc", "other"}, want: Limit{GPUs: 3, Rule: "group postdoc"}, ok: true},
		{name: "default", user: "carol", groups: []string{"other"}, want: Limit{GPUs: 1, Rule: "default"}, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := p.LimitFor(tc.user, tc.groups)
			assert.Check(t, is.Equal(ok, tc.ok))
			assert.Check(t, is.DeepEqual(got, tc.want))
		})
	}
	_, ok := Policy{}.LimitFor("alice", nil)
	assert.Check(t, !ok, "no policy, no limit")
}

func TestParse(t *testing.T) {
	full := `
max-gpus:
  default: 2
  users: {alice: 4}
  groups: {phd: 3}
max-idle: 4h
free:
  max-memory: 2g
  max-util: 20%
`
	p, err := parse([]byte(full))
	assert.NilError(t, err)
	assert.Check(t, is.Equal(*p.MaxGPUs.Default, 2))
	assert.Check(t, is.DeepEqual(p.MaxGPUs.Users, map[string]int{"alice": 4}))
	assert.Check(t, is.Equal(p.MaxIdle, 4*time.Hour))
	assert.Check(t, is.Equal(*p.MaxMemoryMiB, uint64(2048)))
	assert.Check(t, is.Equal(*p.MaxUtilPercent, 20))

	empty, err := parse(nil)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(empty, Policy{}))

	bad := []struct{ text, want string }{
		{"max-gpu: 2\n", "field max-gpu not found"},
		{"max-gpus: {default: -1}\n", "invalid max-gpus default -1"},
		{"max-gpus: {users: {bob: -2}}\n", "invalid max-gpus users bob: -2"},
		{"max-idle: soon\n", `invalid max-idle "soon"`},
		{"max-idle: -1h\n", `invalid max-idle "-1h": use a duration such as 4h or 90m`},
		{"free: {max-memory: lots}\n", `invalid free max-memory "lots"`},
		{"free: {max-util: 120}\n", `invalid free max-util "120"`},
		{"max-gpus: [1]\n", "invalid YAML"},
	}
	for _, tc := range bad {
		_, err := parse([]byte(tc.text))
		assert.Check(t, is.ErrorContains(err, tc.want), "%q", tc.text)
	}
}

// Only a file that nobody but root could have written is used; anything
// else is ignored with the reason and the fix.
func TestLoadTrust(t *testing.T) {
	me := uint32(os.Getuid())
	write := func(t *testing.T, dirMode, fileMode os.FileMode) string {
		dir := filepath.Join(t.TempDir(), "perceptron")
		assert.NilError(t, os.Mkdir(dir, 0o755))
		path := filepath.Join(dir, "policy.yaml")
		assert.NilError(t, os.WriteFile(path, []byte("max-gpus: {default: 1}\n"), 0o644))
		assert.NilError(t, os.Chmod(path, fileMode))
		assert.NilError(t, os.Chmod(dir, dirMode))
		return path
	}
	t.Run("trusted", func(t *testing.T) {
		p, err := load(write(t, 0o755, 0o644), me)
		assert.NilError(t, err)
		assert.Check(t, p.Set())
	})
	t.Run("missing", func(t *testing.T) {
		p, err := load(filepath.Join(t.TempDir(), "policy.yaml"), me)
		assert.NilError(t, err)
		assert.Check(t, !p.Set())
	})
	for _, tc := range []struct {
		name          string
		dirMode, mode os.FileMode
		owner         uint32
		want          string
	}{
		{name: "writable by others", dirMode: 0o755, mode: 0o666, owner: me, want: "is writable by others (mode 0666)"},
		{name: "writable by the group", dirMode: 0o755, mode: 0o664, owner: me, want: "is writable by others"},
		{name: "directory writable by others", dirMode: 0o777, mode: 0o644, owner: me, want: "which is writable by others"},
		{name: "not root's", dirMode: 0o755, mode: 0o644, owner: me + 1, want: "not root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := load(write(t, tc.dirMode, tc.mode), tc.owner)
			assert.Check(t, errors.Is(err, ErrIgnored))
			assert.Check(t, is.ErrorContains(err, tc.want))
			assert.Check(t, !p.Set())
		})
	}
	t.Run("a directory", func(t *testing.T) {
		_, err := load(t.TempDir(), me)
		assert.Check(t, errors.Is(err, ErrIgnored))
	})
}
