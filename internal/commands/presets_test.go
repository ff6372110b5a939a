package commands

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/docker/cli/cli"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/perceptron/docker-perceptron/internal/presets"
)

// A preset file that does not load breaks only what uses it: a run
// without its presets goes on with one warning line, one that names them
// fails with the file's error, presets ls lists the others and fails.
func TestPresetFileSetAside(t *testing.T) {
	const broken = "mine:\n  description: mine\n  shm-size: 2g\nother:\n  rm: yes\n"
	const warning = "WARNING: ignoring presets file USER_PRESETS: line 5: preset \"other\": invalid value \"yes\" for rm: use true or false; its presets are unavailable\n"
	tests := []struct {
		name    string
		system  string // the site's file; "" for none
		user    string // the user's file; "" for the broken one
		args    []string
		wantOut string // a golden file when it ends in .golden
		wantErr string // the error; "" for none
		stderr  string // the warning that stderr begins with; "" for none
	}{
		{
			name:    "a run without presets",
			args:    []string{"run", "--dry-run", "--gpus", "none", "img"},
			wantOut: "docker run --label com.perceptron.user=alice img\n",
			stderr:  warning,
		},
		{
			name:    "a run with a preset of another file",
			args:    []string{"run", "--dry-run", "--preset", "tf-train", "--gpus", "none", "img"},
			wantOut: "dry-run-gpus-none.golden",
			stderr:  warning,
		},
		{
			name:    "a run with a preset of the broken file",
			args:    []string{"run", "--dry-run", "--preset", "mine", "img"},
			wantErr: `preset "mine" is in a preset file that did not load: USER_PRESETS:5: preset "other": invalid value "yes" for rm: use true or false`,
		},
		{
			name:    "a run with a preset that extends one of the broken file",
			system:  broken,
			user:    "own:\n  extends: mine\n",
			args:    []string{"run", "--dry-run", "--preset", "own", "img"},
			wantErr: `preset "own" extends mine, and "mine" is in a preset file that did not load: SYSTEM_PRESETS:5: preset "other"`,
		},
		{
			name:    "presets ls lists the others, then fails",
			args:    []string{"presets", "ls", "-q"},
			wantOut: "jax-train\njupyter\npytorch-train\ntensorboard\ntf-train\n",
			wantErr: `ignoring presets file USER_PRESETS: line 5: preset "other": invalid value "yes" for rm: use true or false; its presets are unavailable`,
		},
		{
			name:    "presets show of another file's preset",
			args:    []string{"presets", "show", "--format", "{{.Name}}", "jupyter"},
			wantOut: "jupyter\n",
			stderr:  warning,
		},
		{
			name:    "presets show of the broken file's preset",
			args:    []string{"presets", "show", "mine"},
			wantErr: `preset "mine" is in a preset file that did not load: USER_PRESETS:5:`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dockerCLI, out, errOut, deps := testCLI(t)
			user := tc.user
			if user == "" {
				user = broken
			}
			assert.NilError(t, os.WriteFile(deps.UserPresets, []byte(user), 0o644))
			if tc.system != "" {
				assert.NilError(t, os.WriteFile(deps.SystemPresets, []byte(tc.system), 0o644))
			}
			scrub := strings.NewReplacer(deps.UserPresets, "USER_PRESETS", deps.SystemPresets, "SYSTEM_PRESETS")
			err := execute(t, dockerCLI, deps, tc.args...)
			if tc.wantErr == "" {
				assert.NilError(t, err)
			} else {
				var status cli.StatusError
				assert.Assert(t, errors.As(err, &status), "%v", err)
				assert.Check(t, is.Equal(status.StatusCode, 125))
				assert.Check(t, is.Contains(scrub.Replace(err.Error()), tc.wantErr))
				assert.Check(t, !strings.Contains(err.Error(), "\n"), "more than one line: %q", err)
				assert.Check(t, errors.As(err, new(*presets.FileError)))
			}
			if strings.HasSuffix(tc.wantOut, ".golden") {
				golden.Assert(t, out.String(), tc.wantOut)
			} else {
				assert.Check(t, is.Equal(out.String(), tc.wantOut))
			}
			// cobra prints the error too, when no plugin framework runs.
			stderr, _, _ := strings.Cut(scrub.Replace(errOut.String()), "Error: ")
			if tc.stderr == "" {
				assert.Check(t, !strings.Contains(stderr, "ignoring presets file"), stderr)
			} else {
				// One warning, first; the run's own may follow.
				assert.Check(t, strings.HasPrefix(stderr, tc.stderr), stderr)
				assert.Check(t, is.Equal(strings.Count(stderr, "ignoring presets file"), 1), stderr)
			}
		})
	}
}

// presets show --format table is the preset's options, docker style.
func TestPresetsShowTable(t *testing.T) {
	tests := []struct {
		name   string
		format string
	}{
		{"presets-show-table", "table"},
		{"presets-show-table-template", "table {{.Option}}\t{{.Value}}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dockerCLI, out, _, deps := testCLI(t)
			assert.NilError(t, execute(t, dockerCLI, deps, "presets", "show", "--format", tc.format, "tf-train"))
			golden.Assert(t, out.String(), tc.name+".golden")
		})
	}
}
