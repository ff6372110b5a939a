package presets_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/command/commands"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/presets"
)

// runFlags returns the flag set of docker/cli's own run command, so that
// the tests check values with docker's own parsers, as the plugin does.
func runFlags(t *testing.T) func() *pflag.FlagSet {
	t.Helper()
	dockerCLI, err := command.NewDockerCli()
	assert.NilError(t, err)
	return func() *pflag.FlagSet {
		root := &cobra.Command{Use: "docker"}
		commands.AddCommands(root, dockerCLI)
		run, _, err := root.Find([]string{"run"})
		assert.NilError(t, err)
		return run.Flags()
	}
}

// special stands in for the plugin's own values: "tty: auto", "gpus: auto".
func special(flag, value string) (bool, error) {
	return (flag == "tty" && value == "auto") || (flag == "gpus" && strings.HasPrefix(value, "auto")), nil
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	assert.NilError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

func TestLoad(t *testing.T) {
	opts := presets.Options{Flags: runFlags(t), Special: special}
	system := writeFile(t, "system.yaml", `
base:
  description: site base
  ulimit: {memlock: -1, stack: 67108864}
  env:
    NCCL_DEBUG: WARN
    HTTP_PROXY:
mine:
  extends: base
  p: ["8000", "6006"]
  shm-size: 2g
  rm: true
  tty: auto
  env: [NCCL_DEBUG=INFO]
`)
	user := writeFile(t, "user.yaml", `
base:
  description: user base replaces the site's
  shm-size: 4g
`)
	store, err := presets.Load(presets.Builtin, []presets.File{
		{Path: system, Source: presets.SourceSystem},
		{Path: user, Source: presets.SourceUser},
		{Path: filepath.Join(t.TempDir(), "missing.yaml"), Source: presets.SourceUser},
	}, opts)
	assert.NilError(t, err)

	base, err := store.Get("base")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(base.Source, presets.SourceUser))
	assert.Check(t, is.Equal(base.Description, "user base replaces the site's"))

	mine, err := store.Get("mine")
	assert.NilError(t, err)
	assert.Check(t, is.Equal(mine.Source, presets.SourceSystem))
	assert.Check(t, is.Equal(mine.Line, 8))

	got, err := store.Expand("mine")
	assert.NilError(t, err)
	want := []presets.Setting{
		{Flag: "publish", Value: "8000", Line: 10},
		{Flag: "publish", Value: "6006", Line: 10},
		{Flag: "shm-size", Value: "2g", Line: 11},
		{Flag: "rm", Value: "true", Line: 12},
		{Flag: "tty", Value: "auto", Line: 13},
		{Flag: "env", Value: "NCCL_DEBUG=INFO", Line: 14},
	}
	// "base" is now the user's: only its shm-size, overridden by mine's.
	assert.DeepEqual(t, got, want)

	names := store.Names()
	assert.Check(t, is.Contains(names, "tf-train"))
	assert.Check(t, is.Contains(names, "mine"))
}

func TestLoadBuiltin(t *testing.T) {
	store, err := presets.Load(presets.Builtin, nil, presets.Options{Flags: runFlags(t), Special: special})
	assert.NilError(t, err)
	for _, name := range []string{"tf-train", "pytorch-train", "jax-train", "jupyter", "tensorboard"} {
		p, err := store.Get(name)
		assert.NilError(t, err)
		assert.Check(t, p.Description != "", name)
		assert.Check(t, is.Equal(p.Source, presets.SourceBuiltin))
	}
	tf, err := store.Expand("tf-train")
	assert.NilError(t, err)
	// The flags of the Perceptron tutorial, its port published on the
	// loopback only: on a shared server "-p 8000" is open to the network.
	assert.DeepEqual(t, presets.Args(tf), []string{
		"--gpus", "auto", "--shm-size", "1g", "--ulimit", "memlock=-1", "--ulimit", "stack=67108864",
		"--publish", "127.0.0.1::8000", "--rm", "--interactive", "--tty=auto",
	})
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		text string
		want string
	}{
		{
			name: "not YAML",
			text: "a:\n  shm-size: [1g\n",
			want: `FILE: not valid YAML: yaml: line 1: did not find expected ',' or ']'`,
		},
		{
			name: "unknown option, closest suggested",
			text: "train:\n  shm_size: 1g\n",
			want: `FILE:2: preset "train": unknown docker run option "shm_size": did you mean "shm-size"?`,
		},
		{
			name: "unknown option, nothing close",
			text: "train:\n  description: x\n  frobnicate-everything: 1\n",
			want: `FILE:3: preset "train": unknown docker run option "frobnicate-everything" (see 'docker run --help' for the option names)`,
		},
		{
			name: "invalid value gets docker's message",
			text: "train:\n  shm-size: lots\n",
			want: `FILE:2: preset "train": invalid value "lots" for shm-size: invalid size: 'lots'`,
		},
		{
			name: "invalid ulimit in a list",
			text: "train:\n  ulimit:\n    - memlock=-1\n    - stack\n",
			want: `FILE:4: preset "train": invalid value "stack" for ulimit: invalid ulimit argument: stack`,
		},
		{
			name: "list for a single-valued option",
			text: "train:\n  shm-size: [1g, 2g]\n",
			want: `FILE:2: preset "train": shm-size takes one value, not a list`,
		},
		{
			name: "mapping for an option without keys",
			text: "train:\n  publish: {a: b}\n",
			want: `FILE:2: preset "train": publish takes a value or a list, not a mapping`,
		},
		{
			name: "detach belongs on the command line",
			text: "train:\n  detach: true\n",
			want: `FILE:2: preset "train": detach cannot be set in a preset: give it on the command line`,
		},
		{
			name: "extends cycle",
			text: "a:\n  extends: b\nb:\n  extends: c\nc:\n  extends: a\n",
			want: `FILE:1: preset "a": extends cycle: a -> b -> c -> a`,
		},
		{
			name: "extends unknown",
			text: "a:\n  extends: nope\n",
			want: `FILE:1: preset "a": extends unknown preset "nope"`,
		},
		{
			name: "preset is not a mapping",
			text: "a: 3\n",
			want: `FILE:1: preset "a": expected a mapping of docker run options to values`,
		},
		{
			name: "top level is not a mapping",
			text: "- a\n",
			want: `FILE:1: expected a mapping of preset names to presets`,
		},
		{
			name: "preset defined twice in a file",
			text: "a:\n  rm: true\nb:\n  rm: true\na:\n  shm-size: 1g\n",
			want: `FILE:5: preset "a" is defined twice in this file (first at line 1): keep one of them, or rename one`,
		},
		{
			name: "option given twice",
			text: "a:\n  shm-size: 1g\n  rm: true\n  shm-size: 2g\n",
			want: `FILE:4: preset "a": shm-size is given twice (first at line 2): give it once`,
		},
		{
			name: "repeatable option given twice",
			text: "a:\n  ulimit: [memlock=-1]\n  ulimit: [stack=67108864]\n",
			want: `FILE:3: preset "a": ulimit is given twice (first at line 2): give it once, its values as a list`,
		},
		{
			name: "option given twice, by its shorthand",
			text: "a:\n  publish: [\"8000\"]\n  p: [\"6006\"]\n",
			want: `FILE:3: preset "a": publish is given twice, as p here and as publish at line 2: give it once, its values as a list`,
		},
		{
			name: "option given twice, by its alias",
			text: "a:\n  net: host\n  network: none\n",
			want: `FILE:3: preset "a": network is given twice, as network here and as net at line 2: give it once, its values as a list`,
		},
		{
			name: "extends given twice",
			text: "a:\n  extends: tf-train\n  description: x\n  extends: jupyter\n",
			want: `FILE:4: preset "a": extends is given twice (first at line 2): give it once`,
		},
		{
			name: "key given twice in a mapping value",
			text: "a:\n  env:\n    A: 1\n    B: 2\n    A: 3\n",
			want: `FILE:5: preset "a": env: A is given twice (first at line 3): give it once`,
		},
		{
			name: "second document",
			text: "a:\n  rm: true\n---\nb:\n  rm: true\n",
			want: `FILE:3: a second YAML document starts here: a preset file is one document; remove this "---" line, or the presets after it`,
		},
		{
			name: "empty second document",
			text: "---\na:\n  rm: true\n---\n",
			want: `FILE:4: a second YAML document starts here: a preset file is one document; remove this "---" line, or the presets after it`,
		},
		{
			name: "second document not YAML",
			text: "a:\n  rm: true\n---\nb: [\n",
			want: `FILE: not valid YAML: yaml: line 4: did not find expected node content`,
		},
		{
			name: "long extends cycle",
			text: "a:\n  extends: b\nb:\n  extends: c\nc:\n  extends: d\nd:\n  extends: e\ne:\n  extends: f\n" +
				"f:\n  extends: g\ng:\n  extends: h\nh:\n  extends: i\ni:\n  extends: j\nj:\n  extends: a\n",
			want: `FILE:1: preset "a": extends cycle: a -> b -> c -> d -> … (3 more) -> h -> i -> j -> a`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "presets.yaml", tc.text)
			_, err := presets.Load(presets.Builtin, []presets.File{{Path: path, Source: presets.SourceUser}},
				presets.Options{Flags: runFlags(t), Special: special})
			want := tc.want
			if len(want) >= 4 && want[:4] == "FILE" {
				want = path + want[4:]
			}
			assert.ErrorContains(t, err, want)
		})
	}
}

// A file may mark its one document; the same preset in the site's file and
// the user's is the user's.
func TestLoadOneDocument(t *testing.T) {
	system := writeFile(t, "system.yaml", "---\na:\n  shm-size: 1g\n...\n")
	user := writeFile(t, "user.yaml", "# mine\n---\na:\n  shm-size: 2g\n  env: {A: 1, B: 2}\n")
	store, err := presets.Load(presets.Builtin, []presets.File{
		{Path: system, Source: presets.SourceSystem},
		{Path: user, Source: presets.SourceUser},
	}, presets.Options{Flags: runFlags(t), Special: special})
	assert.NilError(t, err)
	got, err := store.Expand("a")
	assert.NilError(t, err)
	assert.DeepEqual(t, presets.Args(got), []string{"--shm-size", "2g", "--env", "A=1", "--env", "B=2"})
}

func TestLoadUnreadableFile(t *testing.T) {
	dir := t.TempDir() // a directory where a file is expected: exists, cannot be read
	_, err := presets.Load(presets.Builtin, []presets.File{{Path: dir, Source: presets.SourceUser}}, presets.Options{})
	assert.ErrorContains(t, err, "cannot read the preset file: is a directory")
}

func TestUnknownPreset(t *testing.T) {
	store, err := presets.Load(presets.Builtin, nil, presets.Options{})
	assert.NilError(t, err)
	_, err = store.Expand("tf-train", "nope")
	assert.Error(t, err, `unknown preset "nope": known presets are jax-train, jupyter, pytorch-train, tensorboard, tf-train (see 'docker perceptron presets ls')`)
}

// The web page a preset's server offers: its own open key, else the
// nearest up its chain; a bad port is refused with its line.
func TestOpen(t *testing.T) {
	user := writeFile(t, "presets.yaml", "lab:\n  extends: jupyter\nboard:\n  open: 7000\n")
	store, err := presets.Load(presets.Builtin, []presets.File{{Path: user, Source: presets.SourceUser}}, presets.Options{Flags: runFlags(t), Special: special})
	assert.NilError(t, err)
	for names, want := range map[string]string{"jupyter": "8888", "lab": "8888", "tensorboard": "6006", "board": "7000", "tf-train": ""} {
		assert.Check(t, is.Equal(store.Open(names), want), names)
	}
	_, err = presets.Load(presets.Builtin, []presets.File{{Path: writeFile(t, "bad.yaml", "x:\n  open: web\n"), Source: presets.SourceUser}}, presets.Options{})
	assert.Check(t, is.ErrorContains(err, `bad.yaml:2: preset "x": open must be a container port, from 1 to 65535`))
}

// A training preset is one by its definition or its extends chain, never
// by its name.
func TestTraining(t *testing.T) {
	user := writeFile(t, "presets.yaml", `
my-train:
  description: named like one, but serves notebooks
  shm-size: 1g
mine:
  description: extends a training preset
  extends: pytorch-train
notebook-on-tf:
  description: extends a training preset, and says it is none
  extends: tf-train
  training: false
lab:
  description: a training preset by its own word
  training: true
`)
	store, err := presets.Load(presets.Builtin, []presets.File{{Path: user, Source: presets.SourceUser}}, presets.Options{Flags: runFlags(t), Special: special})
	assert.NilError(t, err)
	tests := []struct {
		names []string
		want  bool
	}{
		{[]string{"tf-train"}, true},
		{[]string{"jupyter"}, false},
		{[]string{"my-train"}, false},
		{[]string{"mine"}, true},
		{[]string{"notebook-on-tf"}, false},
		{[]string{"lab"}, true},
		{[]string{"jupyter", "mine"}, true},
		{nil, false},
	}
	for _, tc := range tests {
		assert.Check(t, is.Equal(store.Training(tc.names...), tc.want), "%v", tc.names)
	}
	_, err = presets.Load(presets.Builtin, []presets.File{{Path: writeFile(t, "bad.yaml", "x:\n  training: sometimes\n"), Source: presets.SourceUser}}, presets.Options{})
	assert.ErrorContains(t, err, "bad.yaml:2: preset \"x\": training must be true or false")
}

// A file that does not load is set aside: the presets that need it are
// unavailable with its error, the others work.
func TestLoadSetsAside(t *testing.T) {
	opts := presets.Options{Flags: runFlags(t), Special: special}
	tests := []struct {
		name   string
		system string // "" for none
		user   string
		// setAside is the error Load returns, FILE standing for the
		// user's file and SYSTEM for the site's.
		setAside string
		works    []string // presets that Expand
		fail     map[string]string
	}{
		{
			name:     "an error in one preset sets its file aside",
			user:     "mine:\n  shm-size: 2g\nother:\n  rm: yes\n",
			setAside: `FILE:4: preset "other": invalid value "yes" for rm: use true or false`,
			works:    []string{"tf-train", "jupyter"},
			fail: map[string]string{
				"mine":  `preset "mine" is in a preset file that did not load: FILE:4: preset "other": invalid value "yes" for rm: use true or false`,
				"other": `preset "other" is in a preset file that did not load: FILE:4:`,
				"nope":  `unknown preset "nope": known presets are jax-train, jupyter, pytorch-train, tensorboard, tf-train`,
			},
		},
		{
			name:     "a built-in preset that the broken file redefines",
			user:     "tf-train:\n  shm_size: 2g\n",
			setAside: `FILE:2: preset "tf-train": unknown docker run option "shm_size": did you mean "shm-size"?`,
			works:    []string{"pytorch-train"},
			fail:     map[string]string{"tf-train": `preset "tf-train" is in a preset file that did not load: FILE:2:`},
		},
		{
			name:     "not YAML: any preset not otherwise known may be in it",
			user:     "mine:\n  shm-size: [2g\n",
			setAside: `FILE: not valid YAML: yaml: line 1: did not find expected ',' or ']'`,
			works:    []string{"tf-train"},
			fail:     map[string]string{"mine": `preset "mine" is unknown, and a preset file that may define it did not load: FILE: not valid YAML`},
		},
		{
			name:     "a user preset extends one of a broken site file",
			system:   "base:\n  shm-size: lots\nsite:\n  rm: true\n",
			user:     "mine:\n  extends: base\n  rm: true\nown:\n  extends: tf-train\n",
			setAside: `SYSTEM:2: preset "base": invalid value "lots" for shm-size: invalid size: 'lots'`,
			works:    []string{"own", "tf-train"},
			fail: map[string]string{
				"mine": `preset "mine" extends base, and "base" is in a preset file that did not load: SYSTEM:2: preset "base"`,
				"site": `preset "site" is in a preset file that did not load: SYSTEM:2:`,
			},
		},
		{
			name:     "the user's file redefines what the broken site file defines",
			system:   "mine:\n  shm-size: lots\n",
			user:     "mine:\n  shm-size: 2g\n",
			setAside: `SYSTEM:2: preset "mine"`,
			works:    []string{"mine", "tf-train"},
		},
		{
			name:     "an extends cycle sets its file aside",
			user:     "a:\n  extends: b\nb:\n  extends: a\nc:\n  rm: true\n",
			setAside: `FILE:1: preset "a": extends cycle: a -> b -> a`,
			works:    []string{"tf-train"},
			fail:     map[string]string{"c": `preset "c" is in a preset file that did not load: FILE:1: preset "a": extends cycle`},
		},
		{
			name:     "a cycle through the site's file is the user's fault",
			system:   "a:\n  extends: b\nb:\n  rm: true\n",
			user:     "b:\n  extends: a\n",
			setAside: `FILE:1: preset "b": extends cycle: b -> a -> b`,
			works:    []string{"tf-train"},
			// The user's b would have won over the site's.
			fail: map[string]string{
				"a": `preset "a" extends b, and "b" is in a preset file that did not load: FILE:1:`,
				"b": `preset "b" is in a preset file that did not load: FILE:1:`,
			},
		},
		{
			name:     "both files broken",
			system:   "a:\n  rm: maybe\n",
			user:     "b:\n  extends: nope\n",
			setAside: `SYSTEM:2: preset "a": invalid value "maybe" for rm: use true or false; FILE:1: preset "b": extends unknown preset "nope"`,
			works:    []string{"tf-train"},
			fail:     map[string]string{"a": "SYSTEM:2:", "b": "FILE:1:"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			user := writeFile(t, "user.yaml", tc.user)
			files := []presets.File{{Path: user, Source: presets.SourceUser}}
			scrub := strings.NewReplacer(user, "FILE")
			if tc.system != "" {
				system := writeFile(t, "system.yaml", tc.system)
				files = append([]presets.File{{Path: system, Source: presets.SourceSystem}}, files...)
				scrub = strings.NewReplacer(user, "FILE", system, "SYSTEM")
			}
			store, err := presets.Load(presets.Builtin, files, opts)
			assert.Assert(t, store != nil)
			var setAside *presets.SetAsideError
			assert.Assert(t, errors.As(err, &setAside), "%v", err)
			assert.Check(t, is.Contains(scrub.Replace(err.Error()), tc.setAside))
			assert.Check(t, is.Equal(len(store.SetAside()), len(setAside.Files)))
			for _, name := range tc.works {
				_, err := store.Expand(name)
				assert.Check(t, err, name)
				assert.Check(t, is.Contains(store.Names(), name))
			}
			for name, want := range tc.fail {
				_, err := store.Expand(name)
				assert.Check(t, is.ErrorContains(err, ""), name)
				if err != nil {
					assert.Check(t, is.Contains(scrub.Replace(err.Error()), want), name)
				}
				assert.Check(t, !slices.Contains(store.Names(), name), "%s is listed", name)
				var fe *presets.FileError
				if want != "" && !strings.HasPrefix(want, "unknown preset") {
					assert.Check(t, errors.As(err, &fe), name)
				}
			}
		})
	}
}

// A value that an option's parser refuses gets the option's allowed
// values, never a message of Go's strconv or time packages.
func TestLoadValueErrors(t *testing.T) {
	opts := presets.Options{Flags: runFlags(t), Special: special}
	tests := []struct {
		option, value, want string
	}{
		{"rm", "yes", `invalid value "yes" for rm: use true or false`},
		{"privileged", "~", `invalid value "~" for privileged: use true or false`},
		{"tty", "sometimes", `invalid value "sometimes" for tty: use true, false or auto (a terminal when stdin is one)`},
		{"pids-limit", "many", `invalid value "many" for pids-limit: use a whole number`},
		{"cpu-shares", "99999999999999999999", `invalid value "99999999999999999999" for cpu-shares: use a whole number from -9223372036854775808 to 9223372036854775807`},
		{"blkio-weight", "99999", `invalid value "99999" for blkio-weight: use a whole number from 0 to 65535`},
		{"health-interval", "5", `invalid value "5" for health-interval: use a duration such as 30s, 1m30s or 500ms`},
		{"umask", "9", `invalid value "9" for umask: use an octal mask such as 0022`},
		{"ulimit", "memlock=lots", `invalid value "memlock=lots" for ulimit: "lots" is not a whole number`},
		{"ulimit", "nofile=99999999999999999999", `invalid value "nofile=99999999999999999999" for ulimit: "99999999999999999999" is out of range`},
		{"gpus", "count=x", `invalid value "count=x" for gpus: invalid count (x): value must be either "all" or an integer: not a whole number`},
	}
	for _, tc := range tests {
		t.Run(tc.option+"="+tc.value, func(t *testing.T) {
			path := writeFile(t, "presets.yaml", "a:\n  "+tc.option+": \""+tc.value+"\"\n")
			_, err := presets.Load(presets.Builtin, []presets.File{{Path: path, Source: presets.SourceUser}}, opts)
			assert.Error(t, err, path+`:2: preset "a": `+tc.want)
		})
	}
}
