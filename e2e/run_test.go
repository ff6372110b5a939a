package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// memlockOK is a memlock limit that the test daemon may set: this sandbox
// refuses memlock=-1 at container start (no CAP_SYS_RESOURCE), so runs that
// start a container override the presets' memlock=-1, which also exercises
// the rule that the user's options win.
const memlockOK = "memlock=1048576"

func writeUserPresets(t *testing.T, e *Env, text string) {
	t.Helper()
	dir := filepath.Join(e.Config, "perceptron")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "presets.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCreateTFTrain checks that the tf-train preset gives the tutorial's
// configuration, by docker inspect.
func TestCreateTFTrain(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		id := e.MustDocker("perceptron", "create", "--preset", "tf-train", "--gpus", "none", testImage, "true")
		checks := map[string]string{
			"{{.HostConfig.ShmSize}}":                           "1073741824",
			"{{json .HostConfig.Ulimits}}":                      `[{"Name":"memlock","Hard":-1,"Soft":-1},{"Name":"stack","Hard":67108864,"Soft":67108864}]`,
			"{{json .HostConfig.PortBindings}}":                 `{"8000/tcp":[{"HostIp":"127.0.0.1","HostPort":""}]}`,
			"{{.HostConfig.AutoRemove}}":                        "true",
			"{{.Config.OpenStdin}}":                             "true",
			"{{.Config.Tty}}":                                   "false", // stdin is not a terminal here
			`{{index .Config.Labels "com.perceptron.presets"}}`: "tf-train",
		}
		for tmpl, want := range checks {
			if got := e.Inspect(id, tmpl); got != want {
				t.Errorf("%s = %s, want %s", tmpl, got, want)
			}
		}
	})
}

// TestRunUserWins checks what the container sees when the user's options
// and a preset's set the same things.
func TestRunUserWins(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		writeUserPresets(t, e, "mine:\n  extends: tf-train\n  gpus: none\n  env: {A: preset, B: preset}\n  label: [team=preset]\n")
		out := e.MustDocker("perceptron", "run", "--preset", "mine",
			"--shm-size", "2g", "--ulimit", memlockOK, "-e", "A=user", "--label", "team=user", "-p", "127.0.0.1::8000",
			"--name", "userwins", testImage, "sh", "-c", `echo "A=$A B=$B"; grep -i locked /proc/self/limits; df -k /dev/shm | tail -1`)
		if !strings.Contains(out, "A=user B=preset") {
			t.Errorf("env: want A=user B=preset, got:\n%s", out)
		}
		if !strings.Contains(out, "1048576") {
			t.Errorf("memlock: want the user's 1048576 bytes, got:\n%s", out)
		}
		if !strings.Contains(out, "2097152") { // 2g in 1K blocks
			t.Errorf("/dev/shm: want 2 GiB, got:\n%s", out)
		}
	})
}

// TestRunUserWinsInspect checks labels, ports and env per key by inspect.
func TestRunUserWinsInspect(t *testing.T) {
	e := newEnv(t)
	writeUserPresets(t, e, "mine:\n  extends: tf-train\n  gpus: none\n  env: {A: preset}\n  label: [team=preset]\n")
	id := e.MustDocker("perceptron", "create", "--preset", "mine", "-e", "A=user", "-l", "team=user",
		"-p", "127.0.0.1:18000:8000", "--ulimit", memlockOK, "--shm-size", "2g", testImage)
	checks := map[string]string{
		`{{index .Config.Labels "team"}}`:   "user",
		"{{json .HostConfig.PortBindings}}": `{"8000/tcp":[{"HostIp":"127.0.0.1","HostPort":"18000"}]}`,
		"{{.HostConfig.ShmSize}}":           "2147483648",
		"{{json .HostConfig.Ulimits}}":      `[{"Name":"memlock","Hard":1048576,"Soft":1048576},{"Name":"stack","Hard":67108864,"Soft":67108864}]`,
	}
	for tmpl, want := range checks {
		if got := e.Inspect(id, tmpl); got != want {
			t.Errorf("%s = %s, want %s", tmpl, got, want)
		}
	}
	env := e.Inspect(id, "{{json .Config.Env}}")
	if !strings.Contains(env, `"A=user"`) || strings.Contains(env, `"A=preset"`) {
		t.Errorf("env = %s, want A=user only", env)
	}
}

// TestRunStopsAtImage checks that options after the image are the
// command's, and that an interactive preset works without a terminal.
func TestRunStopsAtImage(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		r := e.Docker("perceptron", "run", "--preset", "tf-train", "--gpus", "none", "--ulimit", memlockOK,
			testImage, "echo", "train.py", "--preset", "x", "--shm-size", "9g")
		if r.ExitCode != 0 || strings.TrimSpace(r.Stdout) != "train.py --preset x --shm-size 9g" {
			t.Fatalf("want the arguments after the image echoed:\n%s", r)
		}
		if strings.Contains(r.Stderr, "not a TTY") {
			t.Errorf("interactive preset asked for a TTY without one:\n%s", r)
		}
	})
}

// TestDryRunRoundTrip checks that the --dry-run line, run through a shell,
// creates a container configured as docker perceptron create does.
func TestDryRunRoundTrip(t *testing.T) {
	e := newEnv(t)
	args := []string{"--preset", "tf-train", "--preset", "jupyter", "--gpus", "none", "-e", "MSG=it's a \"test\"",
		"--label", "x=y z", testImage, "sh", "-c", "echo $MSG"}
	line := e.MustDocker(append([]string{"perceptron", "create", "--dry-run"}, args...)...)
	if !strings.HasPrefix(line, "docker create ") {
		t.Fatalf("dry run printed %q", line)
	}
	before := e.MustDocker("ps", "-aq")
	if before != "" {
		t.Fatalf("containers before: %s", before)
	}

	// The line uses "docker" from PATH: the client under test.
	sh := exec.Command("sh", "-c", line)
	sh.Env = append(e.environ(), "PATH="+filepath.Dir(e.CLI.Path)+":"+os.Getenv("PATH"))
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, out)
	}
	fromLine := strings.TrimSpace(string(out))
	direct := e.MustDocker(append([]string{"perceptron", "create"}, args...)...)

	for _, tmpl := range []string{
		"{{json .Config.Env}}", "{{json .Config.Labels}}", "{{json .Config.Cmd}}", "{{.Config.OpenStdin}}", "{{.Config.Tty}}",
		"{{.HostConfig.ShmSize}}", "{{json .HostConfig.Ulimits}}", "{{json .HostConfig.PortBindings}}", "{{.HostConfig.AutoRemove}}",
	} {
		if a, b := e.Inspect(fromLine, tmpl), e.Inspect(direct, tmpl); a != b {
			t.Errorf("%s: from the dry-run line %s, from docker perceptron %s", tmpl, a, b)
		}
	}
}

// TestDryRunCreatesNothing checks that --dry-run creates nothing.
func TestDryRunCreatesNothing(t *testing.T) {
	e := newEnv(t)
	e.MustDocker("perceptron", "run", "--dry-run", "--preset", "tf-train", "--gpus", "none", testImage)
	if ps := e.MustDocker("ps", "-aq"); ps != "" {
		t.Errorf("--dry-run created %s", ps)
	}
}

// TestRunBadInput checks that each bad input gets a one-line error, exit
// status 125, and creates nothing.
func TestRunBadInput(t *testing.T) {
	tests := []struct {
		name    string
		presets string
		args    []string
		want    string
	}{
		{"unknown preset", "", []string{"--preset", "nope"}, `unknown preset "nope": known presets are jax-train, jupyter, pytorch-train, tensorboard, tf-train`},
		{"invalid YAML", "mine:\n  shm-size: [1g\n", []string{"--preset", "mine"}, "presets.yaml: not valid YAML"},
		{"unknown key", "mine:\n  description: m\n  shm_size: 1g\n", []string{"--preset", "mine"}, `presets.yaml:3: preset "mine": unknown docker run option "shm_size": did you mean "shm-size"?`},
		{"invalid value", "mine:\n  ulimit: [memlock]\n", []string{"--preset", "mine"}, `presets.yaml:2: preset "mine": invalid value "memlock" for ulimit`},
		{"extends cycle", "a:\n  extends: b\nb:\n  extends: a\n", []string{"--preset", "a"}, `preset "a": extends cycle: a -> b -> a`},
		{"invalid user value", "", []string{"--shm-size", "lots"}, `invalid argument "lots" for "--shm-size" flag: invalid size: 'lots'`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.presets != "" {
				writeUserPresets(t, e, tc.presets)
			}
			r := e.Docker(append(append([]string{"perceptron", "run"}, tc.args...), testImage, "true")...)
			if r.ExitCode != 125 {
				t.Errorf("exit %d, want 125:\n%s", r.ExitCode, r)
			}
			first, _, _ := strings.Cut(strings.TrimSpace(r.Stderr), "\n")
			if !strings.Contains(first, tc.want) {
				t.Errorf("first line of stderr %q does not contain %q", first, tc.want)
			}
			if r.Stdout != "" {
				t.Errorf("stdout: %q", r.Stdout)
			}
			if ps := e.MustDocker("ps", "-aq"); ps != "" {
				t.Errorf("created %s", ps)
			}
		})
	}
}

// TestPresetsCommands checks presets ls and show through the docker CLI.
func TestPresetsCommands(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		writeUserPresets(t, e, "mine:\n  description: my own\n  extends: pytorch-train\n")
		ls := e.MustDocker("perceptron", "presets", "ls")
		for _, want := range []string{"NAME", "tf-train        built-in", "mine            user       my own"} {
			if !strings.Contains(ls, want) {
				t.Errorf("presets ls lacks %q:\n%s", want, ls)
			}
		}
		show := e.MustDocker("perceptron", "presets", "show", "tf-train")
		for _, want := range []string{"--shm-size 1g", "/dev/shm", "--ulimit memlock=-1", "pin", "--ulimit stack=67108864", "64 MiB", "--publish 127.0.0.1::8000", "127.0.0.1 only"} {
			if !strings.Contains(show, want) {
				t.Errorf("presets show tf-train lacks %q:\n%s", want, show)
			}
		}
	})
}
