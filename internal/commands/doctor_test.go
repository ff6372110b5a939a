package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/flags"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/ledger"
	"github.com/perceptron/docker-perceptron/internal/policy"
	"github.com/perceptron/docker-perceptron/internal/preflight"
)

func nvmlDeps(spec gpustest.Spec) Deps {
	return Deps{NVML: func() (nvml.Interface, error) { return gpustest.NewLibrary(spec), nil }}
}

func levels(findings []preflight.Finding) []string {
	var out []string
	for _, f := range findings {
		out = append(out, f.Check+":"+f.Level.String())
	}
	return out
}

// healthyFacts is a well set-up local server.
func healthyFacts(t *testing.T) preflight.DoctorFacts {
	inv, err := gpus.Load(gpustest.NewLibrary(gpustest.EightH100()))
	assert.NilError(t, err)
	return preflight.DoctorFacts{
		Host: preflight.Host{
			DockerHost: "unix:///var/run/docker.sock",
			Daemon: preflight.DaemonInfo{
				ServerVersion: "29.0.1", APIVersion: "1.52", OperatingSystem: "Ubuntu 24.04.3 LTS",
				Local: true, Runtimes: []string{"nvidia", "runc"}, DefaultRuntime: "runc",
				CgroupDriver: "systemd", CgroupVersion: "2",
				HookOnPath: true,
			},
			DevCharLinks: true,
			Toolkit:      preflight.ToolkitConfig{Path: preflight.DefaultToolkitConfig, Exists: true, EnvvarSet: true},
			MemlockHard:  8 << 20,
			Inventory:    inv,
		},
		StateDir: ledger.DirState{Path: "/tmp/docker-perceptron", Exists: true, IsDir: true, Mode: fs.ModeDir | fs.ModeSticky | 0o777, UID: 0},
		Presets: preflight.PresetFacts{
			Files: []preflight.PresetFile{{Path: "/etc/docker/perceptron/presets.yaml", Exists: true}, {Path: "/home/me/.docker/perceptron/presets.yaml"}},
			Count: 7,
		},
		Policy: preflight.PolicyFacts{Path: policy.DefaultPath},
	}
}

// withNVML sets the facts' NVML answer to spec's.
func withNVML(f *preflight.DoctorFacts, spec gpustest.Spec) {
	f.Host.Inventory, f.Host.NVMLErr = gpus.Load(gpustest.NewLibrary(spec))
}

func TestBuildDoctorReport(t *testing.T) {
	testCases := []struct {
		name  string
		facts func(t *testing.T) preflight.DoctorFacts
	}{
		{name: "healthy", facts: healthyFacts},
		{
			name: "broken",
			facts: func(t *testing.T) preflight.DoctorFacts {
				f := healthyFacts(t)
				f.Host.Daemon.Runtimes = []string{"runc"}
				f.Host.Daemon.HookOnPath = false
				f.Host.Daemon.CDISpecDirs = []string{"/etc/cdi", "/var/run/cdi"}
				f.Host.DevCharLinks = false
				spec := gpustest.EightH100()
				spec.InitError = "ERROR_LIBRARY_NOT_FOUND"
				withNVML(&f, spec)
				f.StateDir = ledger.DirState{Path: "/tmp/docker-perceptron", Exists: true, IsDir: true, Mode: fs.ModeDir | 0o755}
				f.Presets.Err = errors.New(`/home/me/.docker/perceptron/presets.yaml:3: preset "mine": unknown docker run option "shm-sise": did you mean "shm-size"?`)
				return f
			},
		},
		{
			name: "rootless",
			facts: func(t *testing.T) preflight.DoctorFacts {
				f := healthyFacts(t)
				f.Host.DockerHost = "unix:///run/user/1000/docker.sock"
				f.Host.Daemon.Rootless = true
				f.Host.Daemon.Runtimes = []string{"runc"}
				f.Host.Daemon.HookOnPath = false
				f.Host.Daemon.NvidiaCDISpecs = []string{"/etc/cdi/nvidia.yaml"}
				// A spec written before GPU 7 was swapped: it lacks its UUID.
				for _, d := range f.Host.Inventory.Devices[:7] {
					f.Host.Daemon.NvidiaCDINames = append(f.Host.Daemon.NvidiaCDINames, strconv.Itoa(d.Index), d.UUID)
				}
				f.Host.DevCharLinks = false
				f.StateDir = ledger.DirState{Path: "/tmp/docker-perceptron", CanCreate: true}
				f.Presets.Files[0].Exists = false
				f.Presets.Count = 4
				f.Host.Toolkit = preflight.ToolkitConfig{Path: preflight.DefaultToolkitConfig, EnvvarUnprivileged: true}
				return f
			},
		},
		{
			// A server set up as many are: nvidia the default runtime, the
			// toolkit's config.toml as generated (the setting commented out).
			name: "shared",
			facts: func(t *testing.T) preflight.DoctorFacts {
				f := healthyFacts(t)
				f.Host.Daemon.DefaultRuntime = "nvidia"
				f.Host.Toolkit = preflight.ToolkitConfig{Path: preflight.DefaultToolkitConfig, Exists: true, EnvvarUnprivileged: true}
				return f
			},
		},
		{
			// A site policy with quotas and max-idle; accounting is on
			// for some GPUs only.
			name: "policy",
			facts: func(t *testing.T) preflight.DoctorFacts {
				f := healthyFacts(t)
				two, hours := 2, 4*time.Hour
				f.Policy.Policy = policy.Policy{Path: policy.DefaultPath, MaxIdle: hours,
					MaxGPUs: policy.Limits{Default: &two, Users: map[string]int{"alice": 4}, Groups: map[string]int{"phd": 3}}}
				for i := range 6 {
					f.Host.Inventory.Devices[i].Accounting = true
				}
				return f
			},
		},
		{
			// A policy file that another user could have written.
			name: "policy-ignored",
			facts: func(t *testing.T) preflight.DoctorFacts {
				f := healthyFacts(t)
				f.Policy.Err = fmt.Errorf("%w: %s is writable by others (mode 0666); make it owned by root and not writable by others (chown root:root, chmod 644)", policy.ErrIgnored, policy.DefaultPath)
				return f
			},
		},
		{
			name: "remote",
			facts: func(t *testing.T) preflight.DoctorFacts {
				f := healthyFacts(t)
				f.Host.DockerHost = "ssh://me@gpu-box"
				f.Host.Daemon.Local = false
				f.Host.Daemon.Runtimes = []string{"runc"}
				f.Host.Daemon.CDIDevices = nil
				f.Host.Inventory, f.Host.NVMLErr = gpus.Inventory{}, errors.New("NVML is not available in this build")
				f.StateDir = ledger.DirState{Path: "/tmp/docker-perceptron", Exists: true, IsDir: true, Mode: fs.ModeDir | 0o777}
				return f
			},
		},
		{
			// A rootful daemon in a container or sandbox without
			// CAP_SYS_RESOURCE, GPUs with failed queries.
			name: "sandbox",
			facts: func(t *testing.T) preflight.DoctorFacts {
				f := healthyFacts(t)
				f.Host.LacksSysResource = true
				spec := gpustest.EightH100()
				spec.GPUs = spec.GPUs[:3]
				spec.GPUs[1].Errors = map[string]string{"handle": "ERROR_GPU_IS_LOST"}
				spec.GPUs[2].Errors = map[string]string{"power": "ERROR_UNKNOWN", "temperature": "ERROR_UNKNOWN"}
				withNVML(&f, spec)
				return f
			},
		},
		{
			name: "no daemon",
			facts: func(t *testing.T) preflight.DoctorFacts {
				f := healthyFacts(t)
				f.Host.DaemonErr = errors.New("cannot reach the docker daemon at unix:///var/run/docker.sock: connection refused")
				f.Host.Inventory.Devices = nil
				return f
			},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			findings := preflight.Doctor(tc.facts(t))
			for _, format := range []string{"table", "json"} {
				dockerCLI, out := doctorCLI(t)
				err := toStatusError(reportDoctor(dockerCLI, format, findings))
				if preflight.Worst(findings) == preflight.Fail {
					var stErr cli.StatusError
					assert.Assert(t, errors.As(err, &stErr))
					assert.Equal(t, stErr.StatusCode, 1)
				} else {
					assert.NilError(t, err)
				}
				name := "doctor-" + strings.ReplaceAll(tc.name, " ", "-")
				if format == "json" {
					name += "-json"
				}
				golden.Assert(t, out.String(), name+".golden")
			}
		})
	}
}

func doctorCLI(t *testing.T) (*command.DockerCli, *bytes.Buffer) {
	t.Helper()
	out := &bytes.Buffer{}
	dockerCLI, err := command.NewDockerCli(command.WithOutputStream(out), command.WithErrorStream(&bytes.Buffer{}))
	assert.NilError(t, err)
	// Never a real daemon: a socket no one serves.
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-daemon.sock"))
	t.Setenv("DOCKER_CONTEXT", "")
	assert.NilError(t, dockerCLI.Initialize(flags.NewClientOptions()))
	return dockerCLI, out
}

func TestReportDoctorStatus(t *testing.T) {
	dockerCLI, _ := doctorCLI(t)
	fail := preflight.Finding{Check: "x", Level: preflight.Fail}
	err := reportDoctor(dockerCLI, "table", []preflight.Finding{fail, fail, {Check: "y", Level: preflight.Warn}})
	assert.Equal(t, toStatusError(err).(cli.StatusError).StatusCode, 1)
	assert.Error(t, err, "2 checks failed")
	err = reportDoctor(dockerCLI, "table", []preflight.Finding{fail})
	assert.Error(t, err, "1 check failed")
	assert.NilError(t, reportDoctor(dockerCLI, "json", []preflight.Finding{{Check: "y", Level: preflight.Warn}}))
}

// doctorAPI answers Ping and Info; anything else panics.
type doctorAPI struct {
	client.APIClient
	info system.Info
}

func (doctorAPI) Ping(context.Context, client.PingOptions) (client.PingResult, error) {
	return client.PingResult{APIVersion: "1.52", OSType: "linux"}, nil
}

func (a doctorAPI) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{Info: a.info}, nil
}

// TestDoctorCommand runs the whole command against a fake remote daemon
// (remote, so that this host's PATH and /dev do not leak into the output).
func TestDoctorCommand(t *testing.T) {
	out, errOut := &bytes.Buffer{}, &bytes.Buffer{}
	api := doctorAPI{info: system.Info{
		ServerVersion: "29.0.1", OperatingSystem: "Ubuntu 24.04.3 LTS",
		CgroupDriver: "cgroupfs", CgroupVersion: "2", DefaultRuntime: "runc",
		Runtimes:          map[string]system.RuntimeWithStatus{"runc": {}},
		DiscoveredDevices: []system.DeviceInfo{{Source: "cdi", ID: "nvidia.com/gpu=0"}},
	}}
	dockerCLI, err := command.NewDockerCli(command.WithOutputStream(out), command.WithErrorStream(errOut), command.WithAPIClient(api))
	assert.NilError(t, err)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("DOCKER_HOST", "tcp://192.0.2.7:2376")
	assert.NilError(t, dockerCLI.Initialize(flags.NewClientOptions()))

	stateDir := filepath.Join(t.TempDir(), "state")
	assert.NilError(t, os.Mkdir(stateDir, 0o700))
	assert.NilError(t, os.Chmod(stateDir, 0o777|fs.ModeSticky))
	deps := nvmlDeps(gpustest.EightH100())
	deps.StateDir = stateDir
	deps.SystemPresets = filepath.Join(t.TempDir(), "system-presets.yaml") // absent
	userPresets := filepath.Join(os.Getenv("DOCKER_CONFIG"), "perceptron", "presets.yaml")
	// docker/cli computes its config directory once per process: name the
	// file rather than depend on which test ran first.
	deps.UserPresets = userPresets
	assert.NilError(t, os.MkdirAll(filepath.Dir(userPresets), 0o755))
	assert.NilError(t, os.WriteFile(userPresets, []byte("mine:\n  description: mine\n  shm-size: 8g\n"), 0o644))
	scrub := strings.NewReplacer(stateDir, "/STATE", deps.SystemPresets, "/SYSTEM/presets.yaml", userPresets, "/CONFIG/perceptron/presets.yaml")

	cmd := withStatus(newDoctorCommand(dockerCLI, deps, newStock(dockerCLI)))
	cmd.SetArgs([]string{})
	cmd.SetOut(errOut)
	cmd.SetErr(errOut)
	assert.NilError(t, cmd.ExecuteContext(t.Context()))
	golden.Assert(t, scrub.Replace(out.String()), "doctor-command.golden")
	assert.Equal(t, errOut.String(), "")

	t.Run("broken user presets", func(t *testing.T) {
		assert.NilError(t, os.WriteFile(userPresets, []byte("mine:\n  description: mine\n  shm-sise: 8g\n"), 0o644))
		out.Reset()
		cmd := withStatus(newDoctorCommand(dockerCLI, deps, newStock(dockerCLI)))
		cmd.SetArgs([]string{"--format", "json"})
		cmd.SetOut(errOut)
		cmd.SetErr(errOut)
		err := cmd.ExecuteContext(t.Context())
		assertStatus(t, err, 1, "1 check failed")
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		golden.Assert(t, scrub.Replace(lines[len(lines)-1])+"\n", "doctor-command-broken-presets.golden")
	})

	t.Run("templates", func(t *testing.T) {
		assert.NilError(t, os.WriteFile(userPresets, []byte("mine:\n  description: mine\n  shm-size: 8g\n"), 0o644))
		for _, tc := range []struct{ format, want string }{
			{format: "{{.Check}}={{.Status}}", want: "daemon=ok\n"},
			{format: "table {{.Check}}\t{{.Status}}", want: "CHECK STATUS\ndaemon ok\n"},
		} {
			out.Reset()
			cmd := withStatus(newDoctorCommand(dockerCLI, deps, newStock(dockerCLI)))
			cmd.SetArgs([]string{"--format", tc.format})
			cmd.SetOut(errOut)
			cmd.SetErr(errOut)
			assert.NilError(t, cmd.ExecuteContext(t.Context()))
			lines := strings.Split(out.String(), "\n")
			n := strings.Count(tc.want, "\n")
			var got string
			for _, l := range lines[:n] {
				got += strings.Join(strings.Fields(l), " ") + "\n"
			}
			assert.Equal(t, got, tc.want, tc.format)
		}
	})

	t.Run("bad template", func(t *testing.T) {
		cmd := withStatus(newDoctorCommand(dockerCLI, deps, newStock(dockerCLI)))
		cmd.SetArgs([]string{"--format", "{{.Check"})
		cmd.SetOut(errOut)
		cmd.SetErr(errOut)
		err := cmd.ExecuteContext(t.Context())
		var st cli.StatusError
		assert.Assert(t, errors.As(err, &st))
		assert.Equal(t, st.StatusCode, 125)
		assert.Assert(t, strings.HasPrefix(st.Status, "template parsing error: "), st.Status)
	})
}

// TestDoctorGoldenWidth: every line of doctor's tables, fixes included,
// fits in 100 columns; the whole text is in --format json's Detail.
func TestDoctorGoldenWidth(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "doctor-*.golden"))
	assert.NilError(t, err)
	assert.Assert(t, len(files) > 0)
	for _, file := range files {
		if strings.HasSuffix(file, "-json.golden") || strings.Contains(file, "broken-presets") {
			continue // JSON lines
		}
		data, err := os.ReadFile(file)
		assert.NilError(t, err)
		for i, line := range strings.Split(string(data), "\n") {
			assert.Check(t, len([]rune(line)) <= 100, "%s:%d is %d characters: %s", file, i+1, len([]rune(line)), line)
		}
	}
}

// assertStatus checks an error's exit status and message.
func assertStatus(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var st cli.StatusError
	assert.Assert(t, errors.As(err, &st), "%T %v", err, err)
	assert.Equal(t, st.StatusCode, code)
	assert.Equal(t, st.Status, msg)
}
