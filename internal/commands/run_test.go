package commands

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/streams"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"
)

// testCLI returns a real docker CLI writing to buffers, and test deps whose
// preset files are under a temp dir.
func testCLI(t *testing.T) (*command.DockerCli, *bytes.Buffer, *bytes.Buffer, Deps) {
	t.Helper()
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	dockerCLI, err := command.NewDockerCli(
		command.WithOutputStream(out),
		command.WithErrorStream(errOut),
		command.WithInputStream(streams.NewIn(os.Stdin)),
	)
	assert.NilError(t, err)
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	deps := DefaultDeps()
	deps.SystemPresets = filepath.Join(dir, "system-presets.yaml")
	deps.UserPresets = filepath.Join(dir, "user-presets.yaml")
	deps.User = func() string { return "alice" }
	deps.Now = func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) }
	return dockerCLI, out, errOut, deps
}

func execute(t *testing.T, dockerCLI command.Cli, deps Deps, args ...string) error {
	t.Helper()
	cmd := NewRootCommand(dockerCLI, deps)
	cmd.PersistentPreRunE = nil // the plugin framework is not running in tests
	cmd.SetArgs(args)
	cmd.SetOut(dockerCLI.Out())
	cmd.SetErr(dockerCLI.Err())
	return cmd.ExecuteContext(t.Context())
}

func TestRunDryRun(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"tf-train", []string{"run", "--preset", "tf-train", "--dry-run", "img"}},
		{"user-wins", []string{"run", "--preset", "tf-train", "--shm-size", "2g", "-e", "A=x y", "--ulimit", "memlock=8388608", "-p", "127.0.0.1:18000:8000", "--dry-run", "img", "sh", "-c", "echo $A"}},
		{"stacked", []string{"create", "--preset", "tf-train", "--preset", "jupyter", "--dry-run", "img"}},
		{"args-after-image", []string{"run", "--dry-run", "--preset", "tensorboard", "img", "python", "train.py", "--preset", "x"}},
		{"ipc-host", []string{"run", "--dry-run", "--preset", "pytorch-train", "--ipc=host", "-it", "img"}},
		{"no-preset", []string{"run", "--dry-run", "--rm", "img"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dockerCLI, out, _, deps := testCLI(t)
			assert.NilError(t, execute(t, dockerCLI, deps, tc.args...))
			golden.Assert(t, out.String(), "dry-run-"+tc.name+".golden")
		})
	}
}

func TestRunEnvFileBeatsPreset(t *testing.T) {
	dockerCLI, out, _, deps := testCLI(t)
	assert.NilError(t, os.WriteFile(deps.UserPresets, []byte("p:\n  env: {A: preset, B: preset}\n"), 0o644))
	envFile := filepath.Join(t.TempDir(), "env")
	assert.NilError(t, os.WriteFile(envFile, []byte("A=file\n"), 0o644))
	assert.NilError(t, execute(t, dockerCLI, deps, "run", "--dry-run", "--preset", "p", "--env-file", envFile, "img"))
	assert.Check(t, !strings.Contains(out.String(), "A=preset"), out.String())
	assert.Check(t, is.Contains(out.String(), "B=preset"))
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name    string
		presets string
		args    []string
		want    string
	}{
		{"unknown preset", "", []string{"run", "--preset", "nope", "img"}, `unknown preset "nope": known presets are jax-train, jupyter, pytorch-train, tensorboard, tf-train`},
		{"invalid docker value", "", []string{"run", "--shm-size", "lots", "img"}, `invalid argument "lots" for "--shm-size" flag: invalid size: 'lots'`},
		{"unknown option", "", []string{"run", "--frob", "img"}, `unknown flag: --frob`},
		{"no image", "", []string{"create", "--preset", "tf-train"}, `"docker perceptron create" requires at least 1 argument.`},
		{"bad preset file", "x:\n  shm_size: 1g\n", []string{"run", "--preset", "tf-train", "img"}, `user-presets.yaml:2: preset "x": unknown docker run option "shm_size": did you mean "shm-size"?`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dockerCLI, out, _, deps := testCLI(t)
			if tc.presets != "" {
				assert.NilError(t, os.WriteFile(deps.UserPresets, []byte(tc.presets), 0o644))
			}
			err := execute(t, dockerCLI, deps, tc.args...)
			assert.ErrorContains(t, err, tc.want)
			var st cli.StatusError
			assert.Assert(t, errorsAs(err, &st), "%T", err)
			assert.Check(t, is.Equal(st.StatusCode, 125))
			assert.Check(t, is.Equal(out.String(), ""))
		})
	}
}

func TestPresetsCommands(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"presets-ls", []string{"presets", "ls"}},
		{"presets-ls-json", []string{"presets", "ls", "--format", "json"}},
		{"presets-show-tf-train", []string{"presets", "show", "tf-train"}},
		{"presets-show-pytorch-train", []string{"presets", "show", "pytorch-train"}},
		{"presets-show-user-json", []string{"presets", "show", "--format", "json", "mine"}},
		{"presets-show-template", []string{"presets", "show", "--format", "{{.Name}}: {{len .Options}} options", "tf-train"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dockerCLI, out, _, deps := testCLI(t)
			assert.NilError(t, os.WriteFile(deps.UserPresets, []byte("mine:\n  description: my training\n  extends: tf-train\n  shm-size: 16g\n  gpus: all\n"), 0o644))
			assert.NilError(t, execute(t, dockerCLI, deps, tc.args...))
			got := strings.ReplaceAll(out.String(), deps.UserPresets, "USER_PRESETS")
			golden.Assert(t, got, tc.name+".golden")
		})
	}
}

func errorsAs(err error, target *cli.StatusError) bool {
	return errors.As(err, target)
}
