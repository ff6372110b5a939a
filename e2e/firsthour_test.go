package e2e

import (
	"strings"
	"testing"
)

// TestDaemonDown: with the daemon down, run says so in docker's words and
// exits 125 as docker run does; no word of GPU runtimes or toolkits.
func TestDaemonDown(t *testing.T) {
	d := startDaemon(t, DaemonOptions{NoImages: true})
	e := newEnvOn(t, d)
	e.FakeNVML = writeFakeNVML(t, sampleNVML(2))
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"perceptron", "run", "--rm", "--gpus", "auto", testImage, "true"},
		{"perceptron", "run", "--rm", "--gpus", "device=0", testImage, "true"},
		{"perceptron", "run", "--rm", testImage, "true"},
	} {
		r := e.Docker(args...)
		t.Logf("%v:\n%s", args, r)
		if r.ExitCode != 125 {
			t.Errorf("%v: exit %d, want 125", args, r.ExitCode)
		}
		if !strings.Contains(r.Stderr, "daemon running") && !strings.Contains(r.Stderr, "daemon is running") {
			t.Errorf("%v: not docker's words:\n%s", args, r.Stderr)
		}
		for _, bad := range []string{"runtime", "toolkit", "remote", "context", "WARNING"} {
			if strings.Contains(r.Stderr, bad) {
				t.Errorf("%v: says %q:\n%s", args, bad, r.Stderr)
			}
		}
	}
}

// TestFirstHour: what a new user meets through the docker CLI: completion,
// an unknown subcommand, help, a dry run on a machine without a driver.
func TestFirstHour(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		e.FakeNVML = writeFakeNVML(t, sampleNVML(2))
		if strings.Contains(e.CLI.Name, "-20.") {
			t.Log("docker 20.10's CLI has no completion for plugins (__complete): not checked")
		} else {
			checkCompletion(t, e)
		}

		r := e.Docker("perceptron", "gpu")
		if r.ExitCode != 125 || !strings.Contains(r.Stderr, "unknown command") || !strings.Contains(r.Stderr, "gpus") {
			t.Errorf("a typo of a subcommand:\n%s", r)
		}

		help := e.MustDocker("perceptron", "run", "--help")
		if !strings.Contains(help, "Options of docker perceptron:") || !strings.Contains(help, "auto:N") || !strings.Contains(help, "--wait[=DURATION]") {
			t.Errorf("run --help:\n%s", help)
		}
		if strings.Index(help, "Options of docker perceptron:") > strings.Index(help, "Options of docker run") {
			t.Errorf("docker perceptron's options are not first:\n%s", help)
		}
	})
}

// TestDryRunWithoutDriver: a dry run on a machine without NVML prints the
// whole line with docker's nearest --gpus N, says so, and still checks.
func TestDryRunWithoutDriver(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		e.FakeNVML = writeFakeNVMLJSON(t, `{"init_error": "ERROR_LIBRARY_NOT_FOUND", "gpus": []}`)
		r := e.Docker("perceptron", "run", "--dry-run", "--preset", "tf-train", testImage)
		if r.ExitCode != 0 || !strings.Contains(r.Stdout, "--gpus 1 ") || !strings.Contains(r.Stderr, "no NVIDIA driver here") {
			t.Fatalf("%s", r)
		}
		// With a driver, the dry run refuses what the run would, after the line.
		e.FakeNVML = writeFakeNVML(t, sampleNVML(2))
		r = e.Docker("perceptron", "run", "--dry-run", "--gpus", "all", cuda99Image)
		if r.ExitCode != 125 || !strings.Contains(r.Stdout, "--gpus all "+cuda99Image) || !strings.Contains(r.Stderr, "99.0") {
			t.Errorf("%s", r)
		}
	})
}

// checkCompletion asks the docker CLI's own completion for plugins.
func checkCompletion(t *testing.T, e *Env) {
	t.Helper()
	out := e.MustDocker("__complete", "perceptron", "run", "--preset", "")
	for _, want := range []string{"tf-train", "pytorch-train", "jupyter"} {
		if !strings.Contains(out, want) {
			t.Errorf("completion of --preset lacks %s:\n%s", want, out)
		}
	}
	if out := e.MustDocker("__complete", "perceptron", "run", "--gpus", ""); !strings.Contains(out, "auto") || !strings.Contains(out, "device=0") {
		t.Errorf("completion of --gpus:\n%s", out)
	}
	if out := e.MustDocker("__complete", "perceptron", "run", "perceptron-te"); !strings.Contains(out, testImage) {
		t.Errorf("completion of the image:\n%s", out)
	}
	if out := e.MustDocker("__complete", "perceptron", "presets", "show", ""); !strings.Contains(out, "tf-train") {
		t.Errorf("completion of presets show:\n%s", out)
	}
}

// TestPresetPortsAndURL: presets publish on 127.0.0.1 only (a user's -p
// still wins), and run -d --preset jupyter prints the URL to open, with
// the host port docker chose and the token the server logged.
func TestPresetPortsAndURL(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		e.FakeNVML = writeFakeNVML(t, sampleNVML(2))
		server := `echo "    http://127.0.0.1:8888/lab?token=0123abcd"; sleep 600`
		// memlock: this machine refuses -1 (see the README's e2e notes).
		r := e.Docker("perceptron", "run", "-d", "--preset", "jupyter", "--ulimit", "memlock=8388608", testImage, "sh", "-c", server)
		if r.ExitCode != 0 {
			t.Fatalf("%s", r)
		}
		id := lastLine(r.Stdout)
		bindings := e.Inspect(id, `{{range $p, $b := .NetworkSettings.Ports}}{{$p}}={{range $b}}{{.HostIP}}:{{.HostPort}}{{end}} {{end}}`)
		if !strings.HasPrefix(bindings, "8888/tcp=127.0.0.1:") {
			t.Fatalf("port 8888 bound as %q, want 127.0.0.1 only", bindings)
		}
		hostPort := strings.TrimSpace(strings.TrimPrefix(bindings, "8888/tcp=127.0.0.1:"))
		if want := "Open http://127.0.0.1:" + hostPort + "/lab?token=0123abcd"; !strings.Contains(r.Stderr, want) {
			t.Errorf("no %q:\n%s", want, r.Stderr)
		}
		if !strings.Contains(r.Stderr, "ssh -N -L "+hostPort+":127.0.0.1:"+hostPort) {
			t.Errorf("no ssh line:\n%s", r.Stderr)
		}
		if gpus := e.Inspect(id, `{{index .Config.Labels "com.perceptron.gpus"}}`); gpus == "" {
			t.Errorf("jupyter got no GPU")
		}
		// The user's -p wins.
		id = lastLine(e.MustDocker("perceptron", "create", "--preset", "tensorboard", "-p", "16006:6006", testImage, "true"))
		if got := e.Inspect(id, `{{range $p, $b := .HostConfig.PortBindings}}{{$p}}={{range $b}}{{.HostIP}}:{{.HostPort}}{{end}}{{end}}`); got != "6006/tcp=:16006" {
			t.Errorf("tensorboard with -p 16006:6006: %q", got)
		}
	})
}
