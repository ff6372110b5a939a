package commands

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/flags"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/gpus/gpustest"
	"github.com/perceptron/docker-perceptron/internal/preflight"
)

// doctorSpec is eight H100s (driver 550.54.15, CUDA 12.4) with fixed UUIDs.
func doctorSpec() gpustest.Spec {
	spec := gpustest.Spec{DriverVersion: "550.54.15", CUDAVersion: "12.4"}
	for i := range 8 {
		spec.GPUs = append(spec.GPUs, gpustest.GPU{UUID: fmt.Sprintf("GPU-0000000%d-h100", i), Name: "NVIDIA H100 80GB HBM3", MemoryTotalMiB: 81559})
	}
	return spec
}

func nvmlDeps(spec gpustest.Spec) Deps {
	return Deps{NVML: func() (nvml.Interface, error) { return gpustest.NewLibrary(spec), nil }}
}

func TestLoadNVML(t *testing.T) {
	t.Run("eight GPUs", func(t *testing.T) {
		f := loadNVML(nvmlDeps(doctorSpec()))
		assert.NilError(t, f.err)
		assert.Equal(t, f.inv.DriverVersion, "550.54.15")
		assert.Equal(t, f.inv.CUDAVersion, "12.4")
		assert.Assert(t, is.Len(f.inv.Devices, 8))
		assert.Equal(t, f.inv.Devices[3].UUID, "GPU-00000003-h100")
	})
	t.Run("no NVML", func(t *testing.T) {
		f := loadNVML(Deps{})
		assert.Assert(t, errors.Is(f.err, gpus.ErrNoDriver), "%v", f.err)
	})
	t.Run("library unavailable", func(t *testing.T) {
		f := loadNVML(Deps{NVML: func() (nvml.Interface, error) { return nil, errors.New("NVML is not available in this build") }})
		assert.Error(t, f.err, "NVML is not available in this build")
	})
	t.Run("init fails", func(t *testing.T) {
		spec := doctorSpec()
		spec.InitError = "ERROR_DRIVER_NOT_LOADED"
		f := loadNVML(nvmlDeps(spec))
		assert.Assert(t, errors.Is(f.err, gpus.ErrNoDriver))
		assert.ErrorContains(t, f.err, "ERROR_DRIVER_NOT_LOADED")
	})
	t.Run("count fails", func(t *testing.T) {
		lib := &mock.Interface{
			InitFunc:                       func() nvml.Return { return nvml.SUCCESS },
			ShutdownFunc:                   func() nvml.Return { return nvml.SUCCESS },
			SystemGetDriverVersionFunc:     func() (string, nvml.Return) { return "580.95.05", nvml.SUCCESS },
			SystemGetCudaDriverVersionFunc: func() (int, nvml.Return) { return 13000, nvml.SUCCESS },
			DeviceGetCountFunc:             func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN },
		}
		f := loadNVML(Deps{NVML: func() (nvml.Interface, error) { return lib, nil }})
		assert.ErrorContains(t, f.err, "ERROR_UNKNOWN")
		got := nvmlFindings(doctorFacts{daemon: preflight.DaemonInfo{Local: true}, nvml: f})
		assert.DeepEqual(t, levels(got), []string{"nvidia-driver:ok", "gpus:fail"})
		assert.Assert(t, is.Contains(got[0].Message, "driver 580.95.05, CUDA 13.0"))
	})
}

func levels(findings []preflight.Finding) []string {
	var out []string
	for _, f := range findings {
		out = append(out, f.Check+":"+f.Level.String())
	}
	return out
}

func TestFailedQueries(t *testing.T) {
	got := failedQueries(map[string]string{"uuid": "ERROR_GPU_IS_LOST", "power": "ERROR_UNKNOWN", "name": "ERROR_GPU_IS_LOST"})
	assert.Equal(t, got, "name, uuid: ERROR_GPU_IS_LOST; power: ERROR_UNKNOWN")
	got = failedQueries(map[string]string{"handle": "ERROR_GPU_IS_LOST", "uuid": "ERROR_GPU_IS_LOST", "name": "ERROR_GPU_IS_LOST"})
	assert.Equal(t, got, "handle: ERROR_GPU_IS_LOST")
}

// healthyFacts is a well set-up local server.
func healthyFacts(t *testing.T) doctorFacts {
	return doctorFacts{
		dockerHost: "unix:///var/run/docker.sock",
		daemon: preflight.DaemonInfo{
			ServerVersion: "29.0.1", APIVersion: "1.52", OperatingSystem: "Ubuntu 24.04.3 LTS",
			Local: true, Runtimes: []string{"nvidia", "runc"},
			CgroupDriver: "systemd", CgroupVersion: "2",
			HookOnPath: true,
		},
		devCharLinks: true,
		memlockHard:  8 << 20,
		nvml:         loadNVML(nvmlDeps(doctorSpec())),
		stateDir:     stateDirFacts{path: "/tmp/docker-perceptron", exists: true, isDir: true, mode: fs.ModeDir | fs.ModeSticky | 0o777, uid: 0},
		presets: presetFacts{
			files: []presetFileFacts{{path: "/etc/docker/perceptron/presets.yaml", exists: true}, {path: "/home/me/.docker/perceptron/presets.yaml"}},
			count: 7,
		},
	}
}

func TestBuildDoctorReport(t *testing.T) {
	testCases := []struct {
		name  string
		facts func(t *testing.T) doctorFacts
	}{
		{name: "healthy", facts: healthyFacts},
		{
			name: "broken",
			facts: func(t *testing.T) doctorFacts {
				f := healthyFacts(t)
				f.daemon.Runtimes = []string{"runc"}
				f.daemon.HookOnPath = false
				f.daemon.CDISpecDirs = []string{"/etc/cdi", "/var/run/cdi"}
				f.devCharLinks = false
				spec := doctorSpec()
				spec.InitError = "ERROR_LIBRARY_NOT_FOUND"
				f.nvml = loadNVML(nvmlDeps(spec))
				f.stateDir = stateDirFacts{path: "/tmp/docker-perceptron", exists: true, isDir: true, mode: fs.ModeDir | 0o755}
				f.presets.err = errors.New(`/home/me/.docker/perceptron/presets.yaml:3: preset "mine": unknown docker run option "shm-sise": did you mean "shm-size"?`)
				return f
			},
		},
		{
			name: "rootless",
			facts: func(t *testing.T) doctorFacts {
				f := healthyFacts(t)
				f.dockerHost = "unix:///run/user/1000/docker.sock"
				f.daemon.Rootless = true
				f.daemon.Runtimes = []string{"runc"}
				f.daemon.HookOnPath = false
				f.daemon.NvidiaCDISpecs = []string{"/etc/cdi/nvidia.yaml"}
				f.devCharLinks = false
				f.stateDir = stateDirFacts{path: "/tmp/docker-perceptron", parentWritable: true}
				f.presets.files[0].exists = false
				f.presets.count = 4
				return f
			},
		},
		{
			name: "remote",
			facts: func(t *testing.T) doctorFacts {
				f := healthyFacts(t)
				f.dockerHost = "ssh://me@gpu-box"
				f.daemon.Local = false
				f.daemon.Runtimes = []string{"runc"}
				f.daemon.CDIDevices = nil
				f.nvml = nvmlFacts{err: errors.New("NVML is not available in this build")}
				f.stateDir = stateDirFacts{path: "/tmp/docker-perceptron", exists: true, isDir: true, mode: fs.ModeDir | 0o777}
				return f
			},
		},
		{
			// A rootful daemon in a container or sandbox without
			// CAP_SYS_RESOURCE, GPUs with failed queries.
			name: "sandbox",
			facts: func(t *testing.T) doctorFacts {
				f := healthyFacts(t)
				f.lacksSysResource = true
				spec := doctorSpec()
				spec.GPUs = spec.GPUs[:3]
				spec.GPUs[1].Errors = map[string]string{"handle": "ERROR_GPU_IS_LOST"}
				spec.GPUs[2].Errors = map[string]string{"power": "ERROR_UNKNOWN", "temperature": "ERROR_UNKNOWN"}
				f.nvml = loadNVML(nvmlDeps(spec))
				return f
			},
		},
		{
			name: "no daemon",
			facts: func(t *testing.T) doctorFacts {
				f := healthyFacts(t)
				f.daemonErr = errors.New("cannot reach the docker daemon at unix:///var/run/docker.sock: connection refused")
				f.nvml.inv.Devices = nil
				return f
			},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			findings := buildDoctorReport(tc.facts(t))
			for _, format := range []string{"table", "json"} {
				dockerCLI, out := doctorCLI(t)
				err := reportDoctor(dockerCLI, format, findings)
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
	return dockerCLI, out
}

func TestReportDoctorStatus(t *testing.T) {
	dockerCLI, _ := doctorCLI(t)
	fail := preflight.Finding{Check: "x", Level: preflight.Fail}
	err := reportDoctor(dockerCLI, "table", []preflight.Finding{fail, fail, {Check: "y", Level: preflight.Warn}})
	assert.Equal(t, err, cli.StatusError{StatusCode: 1, Status: "2 checks failed"})
	err = reportDoctor(dockerCLI, "table", []preflight.Finding{fail})
	assert.Equal(t, err, cli.StatusError{StatusCode: 1, Status: "1 check failed"})
	assert.NilError(t, reportDoctor(dockerCLI, "json", []preflight.Finding{{Check: "y", Level: preflight.Warn}}))
}

func TestStateDir(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, mode fs.FileMode) string {
		p := filepath.Join(root, name)
		assert.NilError(t, os.Mkdir(p, 0o700))
		assert.NilError(t, os.Chmod(p, mode)) // not subject to umask
		return p
	}
	file := filepath.Join(root, "file")
	assert.NilError(t, os.WriteFile(file, nil, 0o644))
	readOnly := mk("ro", 0o555)
	shared := mk("shared", 0o777|fs.ModeSticky)
	link := filepath.Join(root, "link")
	assert.NilError(t, os.Symlink(shared, link))
	testCases := []struct {
		name      string
		path      string
		wantLevel preflight.Level
		wantIn    string
	}{
		{name: "shared", path: shared, wantIn: "(1777)"},
		// internal/claims refuses these two outright.
		{name: "not sticky", path: mk("nosticky", 0o777), wantLevel: preflight.Fail, wantIn: "0777 without the sticky bit: GPU claims refuse it"},
		{name: "symlink", path: link, wantLevel: preflight.Fail, wantIn: "is a symlink"},
		{name: "private", path: mk("private", 0o755), wantLevel: preflight.Fail, wantIn: "is 0755: other users cannot"},
		{name: "absent, creatable", path: filepath.Join(root, "new"), wantIn: "creates it, mode 1777"},
		{name: "absent, parent missing", path: filepath.Join(root, "no", "new"), wantLevel: preflight.Fail, wantIn: "this user cannot create it"},
		{name: "not a directory", path: file, wantLevel: preflight.Fail, wantIn: "not a directory"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		testCases = append(testCases, struct {
			name      string
			path      string
			wantLevel preflight.Level
			wantIn    string
		}{name: "absent, parent read-only", path: filepath.Join(readOnly, "new"), wantLevel: preflight.Fail, wantIn: "this user cannot create it"})
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			f := stateDirFinding(statStateDir(tc.path))
			assert.Equal(t, f.Level, tc.wantLevel)
			assert.Assert(t, is.Contains(f.Message, tc.wantIn))
			if tc.wantLevel != preflight.OK {
				assert.Assert(t, is.Contains(f.Fix, "chmod 1777 "+tc.path))
			}
		})
	}
	entries, err := os.ReadDir(root)
	assert.NilError(t, err)
	for _, e := range entries {
		assert.Assert(t, !strings.HasPrefix(e.Name(), ".perceptron-doctor-"), "probe dir left behind")
	}
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
		CgroupDriver: "cgroupfs", CgroupVersion: "2",
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
	deps := nvmlDeps(doctorSpec())
	deps.StateDir = stateDir
	deps.SystemPresets = filepath.Join(t.TempDir(), "system-presets.yaml") // absent
	userPresets := filepath.Join(os.Getenv("DOCKER_CONFIG"), "perceptron", "presets.yaml")
	// docker/cli computes its config directory once per process: name the
	// file rather than depend on which test ran first.
	deps.UserPresets = userPresets
	assert.NilError(t, os.MkdirAll(filepath.Dir(userPresets), 0o755))
	assert.NilError(t, os.WriteFile(userPresets, []byte("mine:\n  description: mine\n  shm-size: 8g\n"), 0o644))
	scrub := strings.NewReplacer(stateDir, "/STATE", deps.SystemPresets, "/SYSTEM/presets.yaml", userPresets, "/CONFIG/perceptron/presets.yaml")

	cmd := newDoctorCommand(dockerCLI, deps)
	cmd.SetArgs([]string{})
	cmd.SetOut(errOut)
	cmd.SetErr(errOut)
	assert.NilError(t, cmd.ExecuteContext(t.Context()))
	golden.Assert(t, scrub.Replace(out.String()), "doctor-command.golden")
	assert.Equal(t, errOut.String(), "")

	t.Run("broken user presets", func(t *testing.T) {
		assert.NilError(t, os.WriteFile(userPresets, []byte("mine:\n  description: mine\n  shm-sise: 8g\n"), 0o644))
		out.Reset()
		cmd := newDoctorCommand(dockerCLI, deps)
		cmd.SetArgs([]string{"--format", "json"})
		cmd.SetOut(errOut)
		cmd.SetErr(errOut)
		err := cmd.ExecuteContext(t.Context())
		assert.Equal(t, err, cli.StatusError{StatusCode: 1, Status: "1 check failed"})
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		golden.Assert(t, scrub.Replace(lines[len(lines)-1])+"\n", "doctor-command-broken-presets.golden")
	})

	t.Run("bad format", func(t *testing.T) {
		cmd := newDoctorCommand(dockerCLI, deps)
		cmd.SetArgs([]string{"--format", "yaml"})
		cmd.SetOut(errOut)
		cmd.SetErr(errOut)
		err := cmd.ExecuteContext(t.Context())
		assert.Equal(t, err, cli.StatusError{StatusCode: 125, Status: `invalid --format "yaml": use table or json`})
	})
}
