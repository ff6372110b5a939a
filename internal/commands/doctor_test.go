package commands

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/flags"
	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/perceptron/docker-perceptron/internal/preflight"
)

// doctorNVML is a DGX H100 (driver 550.54.15, CUDA 12.4) with fixed UUIDs.
func doctorNVML(t *testing.T) *server.Server {
	t.Helper()
	s := dgxh100.New()
	s.SystemGetCudaDriverVersion_v2Func = func() (int, nvml.Return) { return s.CudaDriverVersion, nvml.SUCCESS }
	for i, d := range s.Devices {
		d.(*server.Device).UUID = "GPU-0000000" + string(rune('0'+i)) + "-h100"
	}
	return s
}

func TestReadNVML(t *testing.T) {
	t.Run("dgx h100", func(t *testing.T) {
		s := doctorNVML(t)
		shutdowns := 0
		s.ShutdownFunc = func() nvml.Return { shutdowns++; return nvml.SUCCESS }
		f := readNVML(s)
		assert.NilError(t, f.err)
		assert.Equal(t, f.driverVersion, "550.54.15")
		assert.Equal(t, f.cudaVersion, "12.4")
		assert.Assert(t, is.Len(f.devices, 8))
		assert.DeepEqual(t, f.devices[3], nvmlDevice{index: 3, name: "NVIDIA H100 80GB HBM3", uuid: "GPU-00000003-h100"}, cmpNVMLDevice)
		assert.Equal(t, shutdowns, 1)
	})

	t.Run("init fails", func(t *testing.T) {
		s := doctorNVML(t)
		s.InitFunc = func() nvml.Return { return nvml.ERROR_DRIVER_NOT_LOADED }
		s.ShutdownFunc = nil // must not be called
		f := readNVML(s)
		assert.ErrorContains(t, f.err, "ERROR_DRIVER_NOT_LOADED")
	})

	t.Run("queries fail, known parts kept", func(t *testing.T) {
		s := doctorNVML(t)
		s.SystemGetCudaDriverVersion_v2Func = func() (int, nvml.Return) { return 0, nvml.ERROR_FUNCTION_NOT_FOUND }
		s.Devices[1].(*server.Device).GetNameFunc = func() (string, nvml.Return) { return "", nvml.ERROR_GPU_IS_LOST }
		s.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
			if i == 2 {
				return nil, nvml.ERROR_GPU_IS_LOST
			}
			return s.Devices[i], nvml.SUCCESS
		}
		f := readNVML(s)
		assert.NilError(t, f.err)
		assert.DeepEqual(t, f.queryErrors, []string{"CUDA version: ERROR_FUNCTION_NOT_FOUND"})
		assert.DeepEqual(t, f.devices[1], nvmlDevice{index: 1, uuid: "GPU-00000001-h100", errs: []string{"name: ERROR_GPU_IS_LOST"}}, cmpNVMLDevice)
		assert.DeepEqual(t, f.devices[2], nvmlDevice{index: 2, errs: []string{"handle: ERROR_GPU_IS_LOST"}}, cmpNVMLDevice)
		assert.Assert(t, is.Len(f.devices, 8))
	})

	t.Run("count fails", func(t *testing.T) {
		lib := &mock.Interface{
			InitFunc:                          func() nvml.Return { return nvml.SUCCESS },
			ShutdownFunc:                      func() nvml.Return { return nvml.SUCCESS },
			SystemGetDriverVersionFunc:        func() (string, nvml.Return) { return "580.95.05", nvml.SUCCESS },
			SystemGetCudaDriverVersion_v2Func: func() (int, nvml.Return) { return 13000, nvml.SUCCESS },
			DeviceGetCountFunc:                func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN },
		}
		f := readNVML(lib)
		assert.Equal(t, f.cudaVersion, "13.0")
		assert.DeepEqual(t, f.queryErrors, []string{"device count: ERROR_UNKNOWN"})
		assert.Assert(t, is.Len(f.devices, 0))
	})
}

var cmpNVMLDevice = cmp.AllowUnexported(nvmlDevice{})

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
		nvml:         readNVML(doctorNVML(t)),
		stateDir:     stateDirFacts{path: "/tmp/docker-perceptron", exists: true, isDir: true, mode: fs.ModeDir | fs.ModeSticky | 0o777},
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
				f.nvml = nvmlFacts{err: errors.New("cannot initialize NVML: ERROR_LIBRARY_NOT_FOUND")}
				f.stateDir = stateDirFacts{path: "/tmp/docker-perceptron", exists: true, isDir: true, mode: fs.ModeDir | 0o755}
				f.presetsChecked = true
				f.presets = []preflight.Finding{{
					Check: "presets", Level: preflight.Fail,
					Message: "/etc/docker/perceptron/presets.yaml: line 3: unknown field \"shm\"",
					Fix:     "did you mean \"shm-size\"?",
				}}
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
				f.presetsChecked = true
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
			name: "no daemon",
			facts: func(t *testing.T) doctorFacts {
				f := healthyFacts(t)
				f.daemonErr = errors.New("cannot reach the docker daemon at unix:///var/run/docker.sock: connection refused")
				f.nvml.devices = nil
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
	assert.Equal(t, resolveStateDir("/a", "/b"), "/a")
	assert.Equal(t, resolveStateDir("", "/b"), "/b")
	assert.Equal(t, resolveStateDir("", ""), "/tmp/docker-perceptron")

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
	testCases := []struct {
		name      string
		path      string
		wantLevel preflight.Level
		wantIn    string
	}{
		{name: "shared", path: mk("shared", 0o777|fs.ModeSticky), wantIn: "(1777)"},
		{name: "not sticky", path: mk("nosticky", 0o777), wantLevel: preflight.Warn, wantIn: "without the sticky bit"},
		{name: "private", path: mk("private", 0o755), wantLevel: preflight.Fail, wantIn: "is 0755: other users cannot"},
		{name: "absent, creatable", path: filepath.Join(root, "new"), wantIn: "will be created"},
		{name: "absent, parent missing", path: filepath.Join(root, "no", "new"), wantLevel: preflight.Fail, wantIn: "cannot be created"},
		{name: "not a directory", path: file, wantLevel: preflight.Fail, wantIn: "not a directory"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		testCases = append(testCases, struct {
			name      string
			path      string
			wantLevel preflight.Level
			wantIn    string
		}{name: "absent, parent read-only", path: filepath.Join(readOnly, "new"), wantLevel: preflight.Fail, wantIn: "cannot be created"})
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
	t.Setenv("DOCKER_HOST", "tcp://10.0.0.7:2376")
	assert.NilError(t, dockerCLI.Initialize(flags.NewClientOptions()))

	stateDir := filepath.Join(t.TempDir(), "state")
	assert.NilError(t, os.Mkdir(stateDir, 0o700))
	assert.NilError(t, os.Chmod(stateDir, 0o777|fs.ModeSticky))
	deps := Deps{
		NVML:     func() (nvml.Interface, error) { return doctorNVML(t), nil },
		StateDir: stateDir,
	}
	presetsCalled := false
	cmd := newDoctorCommandWith(dockerCLI, deps, func() []preflight.Finding {
		presetsCalled = true
		return []preflight.Finding{{Check: "presets", Level: preflight.OK, Message: "2 files, 5 presets"}}
	})
	cmd.SetArgs([]string{})
	cmd.SetOut(errOut)
	cmd.SetErr(errOut)
	assert.NilError(t, cmd.ExecuteContext(t.Context()))
	assert.Assert(t, presetsCalled)
	golden.Assert(t, strings.ReplaceAll(out.String(), stateDir, "/STATE"), "doctor-command.golden")
	assert.Equal(t, errOut.String(), "")

	t.Run("bad format", func(t *testing.T) {
		cmd := newDoctorCommand(dockerCLI, deps)
		cmd.SetArgs([]string{"--format", "yaml"})
		cmd.SetOut(errOut)
		cmd.SetErr(errOut)
		err := cmd.ExecuteContext(t.Context())
		assert.Equal(t, err, cli.StatusError{StatusCode: 125, Status: `invalid --format "yaml": use table or json`})
	})
}
