package presets_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/presets"
)

// chainFile is a preset file of n presets, each extending the one before:
// p0 sets shm-size and LEVEL, each p<i> sets LEVEL again and a V<i> of its
// own.
func chainFile(n int) string {
	var b strings.Builder
	b.WriteString("p0:\n  training: true\n  shm-size: 1g\n  env: [LEVEL=0]\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "p%d:\n  extends: p%d\n  env: [LEVEL=%d, V%d=1]\n", i, i-1, i, i)
	}
	return b.String()
}

// wantChain is what chainFile's p<i> expands to.
func wantChain(i int) []string {
	want := []string{"--shm-size", "1g"}
	for j := 1; j < i; j++ {
		want = append(want, "--env", fmt.Sprintf("V%d=1", j))
	}
	want = append(want, "--env", fmt.Sprintf("LEVEL=%d", i))
	if i > 0 {
		want = append(want, "--env", fmt.Sprintf("V%d=1", i))
	}
	return want
}

// Loading checks every preset's chain, in every command: it takes time
// linear in the presets, even for a chain far longer than the limit allows.
func TestLoadLongChain(t *testing.T) {
	defer presets.SetMaxExtendsDepth(2000)()
	path := writeFile(t, "presets.yaml", chainFile(1000))
	start := time.Now()
	store, err := presets.Load(presets.Builtin, []presets.File{{Path: path, Source: presets.SourceUser}}, presets.Options{Flags: runFlags(t), Special: special})
	elapsed := time.Since(start)
	t.Logf("loading a chain of 1000 presets took %v", elapsed)
	assert.NilError(t, err)
	assert.Check(t, elapsed < 5*time.Second, "took %v", elapsed)

	for _, i := range []int{0, 1, 2, 500, 999} {
		got, err := store.Expand(fmt.Sprintf("p%d", i))
		assert.NilError(t, err)
		assert.Check(t, is.DeepEqual(presets.Args(got), wantChain(i)), "p%d", i)
	}
	assert.Check(t, store.Training("p999"))
}

func TestLoadChainDepth(t *testing.T) {
	opts := presets.Options{Flags: runFlags(t), Special: special}
	path := writeFile(t, "presets.yaml", chainFile(64))
	store, err := presets.Load(presets.Builtin, []presets.File{{Path: path, Source: presets.SourceUser}}, opts)
	assert.NilError(t, err, "a chain of 64 presets is within the limit")
	got, err := store.Expand("p63")
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(presets.Args(got), wantChain(63)))

	for _, n := range []int{65, 1000} {
		path := writeFile(t, "presets.yaml", chainFile(n))
		start := time.Now()
		_, err := presets.Load(presets.Builtin, []presets.File{{Path: path, Source: presets.SourceUser}}, opts)
		t.Logf("refusing a chain of %d presets took %v", n, time.Since(start))
		// p64 is the first preset too deep, whichever preset the check
		// starts from.
		assert.Error(t, err, path+`:194: preset "p64": extends chain p64 -> p63 -> … -> p0 is 65 presets long; the limit is 64: shorten it, repeating a few settings instead of extending`)
	}
}

// A value of 5 MB, or of 1 MB in a file within the limit, is echoed in
// errors cut to a line.
func TestLoadLongValues(t *testing.T) {
	huge := strings.Repeat("x", 5<<20)
	path := writeFile(t, "presets.yaml", "a:\n  shm-size: "+huge+"\n")
	_, err := presets.Load(presets.Builtin, []presets.File{{Path: path, Source: presets.SourceUser}}, presets.Options{})
	assert.Error(t, err, path+": preset file is 5242896 bytes; the limit is 1 MiB: remove the presets you do not use, or move them to a file of their own")

	long := strings.Repeat("y", 1<<20-100)
	tests := []struct {
		name string
		text string
		want string
	}{
		{
			name: "invalid value, repeated by docker's parser",
			text: "a:\n  shm-size: " + long + "\n",
			want: `FILE:2: preset "a": invalid value "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…" (1048476 bytes) for shm-size: invalid size: 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…'`,
		},
		{
			name: "invalid value in a list",
			text: "a:\n  ulimit: [memlock=-1, " + long + "]\n",
			want: `FILE:2: preset "a": invalid value "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…" (1048476 bytes) for ulimit: invalid ulimit argument: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…`,
		},
		{
			name: "unknown option",
			text: "a:\n  ? " + long + "\n  : 1\n",
			want: `FILE:3: preset "a": unknown docker run option "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…" (1048476 bytes) (see 'docker run --help' for the option names)`,
		},
		{
			name: "invalid preset name",
			text: "? a " + long + "\n: {rm: true}\n",
			want: `FILE:1: invalid preset name "a yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…" (1048478 bytes): use letters, digits, '-', '_' or '.'`,
		},
		{
			name: "long preset name",
			text: "? " + long + "\n: {shm-size: lots}\n",
			want: `FILE:2: preset "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…" (1048476 bytes): invalid value "lots" for shm-size: invalid size: 'lots'`,
		},
		{
			name: "extends an unknown preset",
			text: "a:\n  extends: " + long + "\n",
			want: `FILE:1: preset "a": extends unknown preset "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy…" (1048476 bytes) (known: a, jax-train, jupyter, pytorch-train, tensorboard, tf-train)`,
		},
		{
			name: "control characters stay escaped",
			text: "a:\n  ulimit: [\"memlock\\n-1\\t\"]\n",
			want: `FILE:2: preset "a": invalid value "memlock\n-1\t" for ulimit: invalid ulimit argument: memlock\n-1\t`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "presets.yaml", tc.text)
			_, err := presets.Load(presets.Builtin, []presets.File{{Path: path, Source: presets.SourceUser}},
				presets.Options{Flags: runFlags(t), Special: special})
			assert.Error(t, err, strings.Replace(tc.want, "FILE", path, 1))
			assert.Check(t, len(err.Error()) < 1024, "%d bytes", len(err.Error()))
		})
	}
}

// An error lists the known presets up to a point.
func TestUnknownPresetManyKnown(t *testing.T) {
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "preset-%04d:\n  rm: true\n", i)
	}
	store, err := presets.Load(presets.Builtin, []presets.File{{Path: writeFile(t, "presets.yaml", b.String()), Source: presets.SourceUser}}, presets.Options{})
	assert.NilError(t, err)
	_, err = store.Expand("nope")
	assert.ErrorContains(t, err, `unknown preset "nope": known presets are jax-train, jupyter, preset-0000, `)
	assert.ErrorContains(t, err, ` more) (see 'docker perceptron presets ls')`)
	assert.Check(t, len(err.Error()) < 1024, "%d bytes", len(err.Error()))
}

// Echo keeps its width whatever the value holds: quotes and invalid bytes
// take more than one character once quoted.
func TestEchoWidth(t *testing.T) {
	for _, v := range []string{strings.Repeat(`"`, 500), strings.Repeat("\x84", 500), strings.Repeat(`\`, 500), strings.Repeat("é", 500)} {
		got := presets.Echo(v)
		quoted, _, _ := strings.Cut(got, "…")
		if len(quoted) > 2+80 {
			t.Errorf("Echo of %.10q… is %d characters before the cut: %s", v, len(quoted), got)
		}
	}
}
