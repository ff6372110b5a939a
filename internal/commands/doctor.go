package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/preflight"
)

// Where the host-wide GPU lock and the claim leases live when neither Deps
// nor the environment says otherwise.
const (
	envStateDir     = "PERCEPTRON_STATE_DIR"
	defaultStateDir = "/tmp/docker-perceptron"
)

type doctorOptions struct {
	format string
	// checkPresets validates the preset files; nil skips the check.
	checkPresets func() []preflight.Finding
}

// newDoctorCommand returns "doctor" without the preset check; see
// newDoctorCommandWith.
func newDoctorCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	return newDoctorCommandWith(dockerCLI, deps, nil)
}

// newDoctorCommandWith returns "doctor"; checkPresets, when not nil, reports
// on the preset files.
func newDoctorCommandWith(dockerCLI command.Cli, deps Deps, checkPresets func() []preflight.Finding) *cobra.Command {
	opts := doctorOptions{checkPresets: checkPresets}
	cmd := &cobra.Command{
		Use:   "doctor [OPTIONS]",
		Short: "Check that this host and its docker daemon can run GPU containers",
		Args:  cli.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDoctor(cmd.Context(), dockerCLI, deps, opts)
		},
	}
	cmd.Flags().StringVar(&opts.format, "format", "table", `output format: "table" or "json" (one object per check per line)`)
	return cmd
}

func runDoctor(ctx context.Context, dockerCLI command.Cli, deps Deps, opts doctorOptions) error {
	if opts.format != "table" && opts.format != "json" {
		return cli.StatusError{StatusCode: 125, Status: fmt.Sprintf("invalid --format %q: use table or json", opts.format)}
	}
	facts := gatherDoctorFacts(ctx, dockerCLI, deps)
	if opts.checkPresets != nil {
		facts.presets = opts.checkPresets()
		facts.presetsChecked = true
	}
	return reportDoctor(dockerCLI, opts.format, buildDoctorReport(facts))
}

// doctorFacts is everything doctor reports on, gathered up front so that
// buildDoctorReport is a pure function.
type doctorFacts struct {
	dockerHost   string
	daemon       preflight.DaemonInfo
	daemonErr    error
	devCharLinks bool  // NVIDIA links in /dev/char (see preflight.NvidiaDevCharLinks)
	memlockHard  int64 // this user's hard RLIMIT_MEMLOCK; -1 unlimited, 0 unknown

	nvml nvmlFacts

	stateDir stateDirFacts

	presets        []preflight.Finding
	presetsChecked bool
}

// nvmlFacts is what NVML says about the host's driver and GPUs.
type nvmlFacts struct {
	err           error // NVML unavailable or Init failed
	driverVersion string
	cudaVersion   string   // "13.0"
	queryErrors   []string // system-level queries that failed, "driver version: ERROR_..."
	devices       []nvmlDevice
}

type nvmlDevice struct {
	index      int
	name, uuid string
	errs       []string // queries that failed for this device
}

// stateDirFacts describes the lock and lease directory.
type stateDirFacts struct {
	path           string
	exists         bool
	isDir          bool
	mode           fs.FileMode
	err            error // stat failed for another reason than absence
	parentWritable bool  // when it does not exist: can it be created?
}

// gatherDoctorFacts is the thin layer that talks to the daemon, NVML and
// the file system.
func gatherDoctorFacts(ctx context.Context, dockerCLI command.Cli, deps Deps) doctorFacts {
	var f doctorFacts
	f.dockerHost = dockerCLI.DockerEndpoint().Host
	f.daemon, f.daemonErr = preflight.DaemonFacts(ctx, dockerCLI.Client(), f.dockerHost)
	if f.daemonErr == nil && f.daemon.Local {
		f.daemon.HookOnPath = preflight.LookupHook(os.Getenv("PATH"))
		f.devCharLinks = preflight.NvidiaDevCharLinks("/dev")
	}
	if hard, err := preflight.MemlockHardLimit(); err == nil {
		f.memlockHard = hard
	}

	if deps.NVML == nil {
		f.nvml.err = errors.New("NVML is not available")
	} else if lib, err := deps.NVML(); err != nil {
		f.nvml.err = err
	} else {
		f.nvml = readNVML(lib)
	}

	f.stateDir = statStateDir(resolveStateDir(deps.StateDir, os.Getenv(envStateDir)))
	return f
}

// resolveStateDir picks the state directory: Deps, then the environment,
// then the default.
func resolveStateDir(fromDeps, fromEnv string) string {
	switch {
	case fromDeps != "":
		return fromDeps
	case fromEnv != "":
		return fromEnv
	default:
		return defaultStateDir
	}
}

func statStateDir(path string) stateDirFacts {
	s := stateDirFacts{path: path}
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		s.exists, s.isDir, s.mode = true, fi.IsDir(), fi.Mode()
	case errors.Is(err, fs.ErrNotExist):
		// Try for real: permission bits alone do not tell about ACLs,
		// read-only mounts or root.
		if tmp, err := os.MkdirTemp(filepath.Dir(path), ".perceptron-doctor-"); err == nil {
			s.parentWritable = true
			_ = os.Remove(tmp)
		}
	default:
		s.err = err
	}
	return s
}

// readNVML reads the driver and the GPUs. A GPU whose query fails is kept,
// with what is known.
func readNVML(lib nvml.Interface) nvmlFacts {
	var f nvmlFacts
	if ret := lib.Init(); ret != nvml.SUCCESS {
		f.err = fmt.Errorf("cannot initialize NVML: %v", ret)
		return f
	}
	defer lib.Shutdown()

	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		f.driverVersion = v
	} else {
		f.queryErrors = append(f.queryErrors, fmt.Sprintf("driver version: %v", ret))
	}
	if v, ret := lib.SystemGetCudaDriverVersion_v2(); ret == nvml.SUCCESS {
		f.cudaVersion = fmt.Sprintf("%d.%d", v/1000, v%1000/10)
	} else {
		f.queryErrors = append(f.queryErrors, fmt.Sprintf("CUDA version: %v", ret))
	}
	count, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		f.queryErrors = append(f.queryErrors, fmt.Sprintf("device count: %v", ret))
		return f
	}
	for i := range count {
		d := nvmlDevice{index: i}
		dev, ret := lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			d.errs = append(d.errs, fmt.Sprintf("handle: %v", ret))
			f.devices = append(f.devices, d)
			continue
		}
		if d.name, ret = dev.GetName(); ret != nvml.SUCCESS {
			d.errs = append(d.errs, fmt.Sprintf("name: %v", ret))
		}
		if d.uuid, ret = dev.GetUUID(); ret != nvml.SUCCESS {
			d.errs = append(d.errs, fmt.Sprintf("UUID: %v", ret))
		}
		f.devices = append(f.devices, d)
	}
	return f
}

// buildDoctorReport turns the facts into one finding per line of the report.
func buildDoctorReport(f doctorFacts) []preflight.Finding {
	var out []preflight.Finding
	out = append(out, daemonFinding(f))
	if f.daemonErr == nil {
		out = append(out,
			preflight.GPUProvider(f.daemon),
			preflight.CgroupDeviceAccess(f.daemon, f.devCharLinks),
			memlockFinding(f),
		)
	}
	out = append(out, nvmlFindings(f)...)
	out = append(out, stateDirFinding(f.stateDir))
	if f.presetsChecked {
		if len(f.presets) == 0 {
			out = append(out, preflight.Finding{Check: "presets", Level: preflight.OK, Message: "no preset files found; built-in presets only"})
		}
		out = append(out, f.presets...)
	}
	return out
}

func daemonFinding(f doctorFacts) preflight.Finding {
	if f.daemonErr != nil {
		return preflight.Finding{
			Check: "daemon", Level: preflight.Fail,
			Message: f.daemonErr.Error(),
			Fix:     "start the daemon (sudo systemctl start docker, or systemctl --user start docker when rootless) or check DOCKER_HOST and `docker context ls`",
		}
	}
	d := f.daemon
	msg := "Docker " + orDash(d.ServerVersion)
	if d.APIVersion != "" {
		msg += " (API " + d.APIVersion + ")"
	}
	if f.dockerHost != "" {
		msg += " at " + f.dockerHost
	}
	if d.Local {
		msg += ", local"
	} else {
		msg += ", remote"
	}
	if d.Rootless {
		msg += ", rootless"
	} else {
		msg += ", rootful"
	}
	if d.OperatingSystem != "" {
		msg += ", " + d.OperatingSystem
	}
	return preflight.Finding{Check: "daemon", Level: preflight.OK, Message: msg}
}

// memlockFinding tells whether the training presets' --ulimit memlock=-1
// will be accepted by this daemon.
func memlockFinding(f doctorFacts) preflight.Finding {
	hard := f.memlockHard
	if !f.daemon.Local {
		hard = 0 // this user's limit says nothing about a remote daemon's
	}
	// With nothing but the ulimit set, Run only runs the memlock check.
	found := preflight.Run(preflight.Input{
		Daemon:          f.daemon,
		Ulimits:         []string{"memlock=-1"},
		HostMemlockHard: hard,
	})
	if len(found) > 0 {
		return found[0]
	}
	msg := "--ulimit memlock=-1 allowed (rootful daemon)"
	if f.daemon.Rootless {
		msg = "--ulimit memlock=-1 allowed (unlimited for this user)"
	}
	return preflight.Finding{Check: "memlock", Level: preflight.OK, Message: msg}
}

func nvmlFindings(f doctorFacts) []preflight.Finding {
	// NVML reads this host; with a remote daemon its GPUs are elsewhere and
	// a missing driver here is no failure.
	fail, where := preflight.Fail, ""
	if f.daemonErr == nil && !f.daemon.Local {
		fail, where = preflight.Warn, " (this host; the daemon is remote)"
	}
	n := f.nvml
	if n.err != nil {
		return []preflight.Finding{{
			Check: "nvidia-driver", Level: fail,
			Message: n.err.Error() + where,
			Fix:     "install the NVIDIA driver for your GPUs and check that nvidia-smi works; the plugin needs libnvidia-ml.so.1",
		}}
	}
	driver := preflight.Finding{
		Check: "nvidia-driver", Level: preflight.OK,
		Message: fmt.Sprintf("driver %s, CUDA %s%s", orDash(n.driverVersion), orDash(n.cudaVersion), where),
	}
	if len(n.queryErrors) > 0 {
		driver.Level = preflight.Warn
		driver.Message += "; failed: " + strings.Join(n.queryErrors, ", ")
		driver.Fix = "check nvidia-smi; a driver/library version mismatch needs a reboot after a driver upgrade"
	}
	out := []preflight.Finding{driver}
	if len(n.devices) == 0 {
		return append(out, preflight.Finding{
			Check: "gpus", Level: fail,
			Message: "NVML sees no GPU" + where,
			Fix:     "check nvidia-smi and that the nvidia kernel module is loaded (lsmod | grep nvidia)",
		})
	}
	for _, d := range n.devices {
		g := preflight.Finding{
			Check: fmt.Sprintf("gpu %d", d.index), Level: preflight.OK,
			Message: orDash(d.name) + ", " + orDash(d.uuid),
		}
		if len(d.errs) > 0 {
			g.Level = preflight.Warn
			g.Message += "; failed: " + strings.Join(d.errs, ", ")
			g.Fix = "check this GPU with nvidia-smi -i " + fmt.Sprint(d.index) + "; a GPU that has fallen off the bus needs a reset or a reboot"
		}
		out = append(out, g)
	}
	return out
}

func stateDirFinding(s stateDirFacts) preflight.Finding {
	const check = "state-dir"
	fix := "sudo mkdir -p " + s.path + " && sudo chmod 1777 " + s.path
	switch {
	case s.err != nil:
		return preflight.Finding{Check: check, Level: preflight.Fail, Message: s.err.Error(), Fix: fix}
	case !s.exists && s.parentWritable:
		return preflight.Finding{Check: check, Level: preflight.OK, Message: s.path + " does not exist yet; it will be created (mode 1777) on first use"}
	case !s.exists:
		return preflight.Finding{Check: check, Level: preflight.Fail, Message: s.path + " does not exist and cannot be created by this user", Fix: fix}
	case !s.isDir:
		return preflight.Finding{Check: check, Level: preflight.Fail, Message: s.path + " is not a directory", Fix: "remove it, then: " + fix}
	case s.mode.Perm()&0o003 != 0o003:
		return preflight.Finding{
			Check: check, Level: preflight.Fail,
			Message: fmt.Sprintf("%s is %s: other users cannot take GPU locks and leases", s.path, modeString(s.mode)),
			Fix:     "sudo chmod 1777 " + s.path,
		}
	case s.mode&fs.ModeSticky == 0:
		return preflight.Finding{
			Check: check, Level: preflight.Warn,
			Message: fmt.Sprintf("%s is %s without the sticky bit: users can delete each other's leases", s.path, modeString(s.mode)),
			Fix:     "sudo chmod 1777 " + s.path,
		}
	}
	return preflight.Finding{Check: check, Level: preflight.OK, Message: fmt.Sprintf("%s (%s)", s.path, modeString(s.mode))}
}

// modeString is the octal mode as chmod takes it, "1777".
func modeString(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	return fmt.Sprintf("%04o", v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// reportDoctor prints the report and returns a StatusError when a check failed.
func reportDoctor(dockerCLI command.Cli, format string, findings []preflight.Finding) error {
	var err error
	if format == "json" {
		err = writeDoctorJSON(dockerCLI.Out(), findings)
	} else {
		err = writeDoctorTable(dockerCLI.Out(), findings)
	}
	if err != nil {
		return err
	}
	failed := 0
	for _, f := range findings {
		if f.Level == preflight.Fail {
			failed++
		}
	}
	switch failed {
	case 0:
		return nil
	case 1:
		return cli.StatusError{StatusCode: 1, Status: "1 check failed"}
	default:
		return cli.StatusError{StatusCode: 1, Status: fmt.Sprintf("%d checks failed", failed)}
	}
}

// writeDoctorTable writes "CHECK  STATUS  DETAIL" rows, docker style (three
// spaces between columns), with each fix indented under its detail.
func writeDoctorTable(w io.Writer, findings []preflight.Finding) error {
	checkWidth, statusWidth := len("CHECK"), len("STATUS")
	for _, f := range findings {
		checkWidth = max(checkWidth, len(f.Check))
		statusWidth = max(statusWidth, len(f.Level.String()))
	}
	const gap = "   "
	indent := strings.Repeat(" ", checkWidth+len(gap)+statusWidth+len(gap))
	var b strings.Builder
	fmt.Fprintf(&b, "%-*s%s%-*s%s%s\n", checkWidth, "CHECK", gap, statusWidth, "STATUS", gap, "DETAIL")
	for _, f := range findings {
		fmt.Fprintf(&b, "%-*s%s%-*s%s%s\n", checkWidth, f.Check, gap, statusWidth, f.Level.String(), gap, f.Message)
		if f.Fix != "" {
			fmt.Fprintf(&b, "%sfix: %s\n", indent, f.Fix)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// doctorJSON is one line of --format json.
type doctorJSON struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

func writeDoctorJSON(w io.Writer, findings []preflight.Finding) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, f := range findings {
		if err := enc.Encode(doctorJSON{Check: f.Check, Status: f.Level.String(), Message: f.Message, Fix: f.Fix}); err != nil {
			return err
		}
	}
	return nil
}
