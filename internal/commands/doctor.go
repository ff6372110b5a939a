package commands

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command"
	"github.com/spf13/cobra"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/preflight"
)

type doctorOptions struct {
	format string
}

func newDoctorCommand(dockerCLI command.Cli, deps Deps) *cobra.Command {
	var opts doctorOptions
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
	// lacksSysResource: this host withholds CAP_SYS_RESOURCE (see
	// preflight.LacksSysResource).
	lacksSysResource bool

	nvml nvmlFacts

	stateDir stateDirFacts

	presets presetFacts
}

// nvmlFacts is what NVML says about the host's driver and GPUs.
type nvmlFacts struct {
	inv gpus.Inventory
	// err is gpus.Load's: NVML unusable (wraps gpus.ErrNoDriver), or the
	// GPUs could not be counted (inv then has the driver's versions).
	err error
}

// stateDirFacts describes the lock and lease directory.
type stateDirFacts struct {
	path           string
	exists         bool
	symlink        bool
	isDir          bool
	mode           fs.FileMode
	uid            int   // owner; -1 unknown
	err            error // lstat failed for another reason than absence
	parentWritable bool  // when it does not exist: can it be created?
}

// presetFacts describes the preset files.
type presetFacts struct {
	files []presetFileFacts // in load order
	count int               // presets that load, built-in ones included
	err   error             // the first error loading them (file:line)
}

type presetFileFacts struct {
	path   string
	exists bool
}

// gatherDoctorFacts is the thin layer that talks to the daemon, NVML and
// the file system.
func gatherDoctorFacts(ctx context.Context, dockerCLI command.Cli, deps Deps) doctorFacts {
	var f doctorFacts
	f.dockerHost = dockerCLI.DockerEndpoint().Host
	f.daemon, f.daemonErr = preflight.DaemonFacts(ctx, dockerCLI.Client(), f.dockerHost)
	if f.daemonErr == nil && f.daemon.Local {
		f.daemon.HookOnPath = preflight.LookupDaemonHook(f.dockerHost, os.Getenv("PATH"))
		f.devCharLinks = preflight.NvidiaDevCharLinks("/dev")
		f.lacksSysResource = preflight.LacksSysResource()
	}
	if hard, err := preflight.MemlockHardLimit(); err == nil {
		f.memlockHard = hard
	}
	f.nvml = loadNVML(deps)
	f.stateDir = statStateDir(deps.stateDir())
	f.presets = checkPresetFiles(dockerCLI, deps)
	return f
}

// loadNVML reads the inventory with gpus.Load, whose errors say how to
// check the driver.
func loadNVML(deps Deps) nvmlFacts {
	var lib nvml.Interface
	if deps.NVML != nil {
		l, err := deps.NVML()
		if err != nil {
			return nvmlFacts{err: err}
		}
		lib = l
	}
	inv, err := gpus.Load(lib) // a nil lib is gpus.ErrNoDriver
	return nvmlFacts{inv: inv, err: err}
}

func statStateDir(path string) stateDirFacts {
	s := stateDirFacts{path: path, uid: -1}
	// Lstat: the claims refuse a symlink, as they do not follow one.
	fi, err := os.Lstat(path)
	switch {
	case err == nil:
		s.exists, s.isDir, s.mode = true, fi.IsDir(), fi.Mode()
		s.symlink = fi.Mode()&fs.ModeSymlink != 0
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			s.uid = int(st.Uid)
		}
	case errors.Is(err, fs.ErrNotExist):
		// Try for real: permission bits alone do not tell about ACLs,
		// read-only mounts or root. The claims make only the last
		// element, as this does.
		if tmp, err := os.MkdirTemp(filepath.Dir(path), ".perceptron-doctor-"); err == nil {
			s.parentWritable = true
			_ = os.Remove(tmp)
		}
	default:
		s.err = err
	}
	return s
}

// checkPresetFiles tells which preset files exist and loads them all as
// run does.
func checkPresetFiles(dockerCLI command.Cli, deps Deps) presetFacts {
	var p presetFacts
	for _, path := range presetFilePaths(deps) {
		if path == "" {
			continue
		}
		_, err := os.Stat(path)
		// A file that exists but cannot be read is reported by the load.
		p.files = append(p.files, presetFileFacts{path: path, exists: !errors.Is(err, fs.ErrNotExist)})
	}
	store, err := loadPresets(dockerCLI, deps)
	if err != nil {
		p.err = err
		return p
	}
	p.count = len(store.List())
	return p
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
	out = append(out, presetsFinding(f.presets))
	return out
}

func presetsFinding(p presetFacts) preflight.Finding {
	const check = "presets"
	if p.err != nil {
		return preflight.Finding{
			Check: check, Level: preflight.Fail,
			Message: p.err.Error(),
			Fix:     "fix the file; 'docker perceptron presets ls' shows what loads",
		}
	}
	from, absent := []string{"built-in"}, []string(nil)
	for _, file := range p.files {
		if file.exists {
			from = append(from, file.path)
		} else {
			absent = append(absent, file.path)
		}
	}
	msg := fmt.Sprintf("%d presets load (%s)", p.count, strings.Join(from, ", "))
	if len(absent) > 0 {
		msg += "; no file at " + strings.Join(absent, ", ")
	}
	return preflight.Finding{Check: check, Level: preflight.OK, Message: msg}
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
	hard, lacks := f.memlockHard, f.lacksSysResource
	if !f.daemon.Local {
		// This host's limits say nothing about a remote daemon's.
		hard, lacks = 0, false
	}
	// With nothing but the ulimit set, Run only runs the memlock check.
	found := preflight.Run(preflight.Input{
		Daemon:               f.daemon,
		Ulimits:              []string{"memlock=-1"},
		HostMemlockHard:      hard,
		HostLacksSysResource: lacks,
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
	inv, err := f.nvml.inv, f.nvml.err
	if err != nil && (errors.Is(err, gpus.ErrNoDriver) || inv.DriverVersion == "" && inv.CUDAVersion == "") {
		return []preflight.Finding{{
			Check: "nvidia-driver", Level: fail,
			Message: err.Error() + where,
			Fix:     "install the NVIDIA driver for your GPUs and check that nvidia-smi works; the plugin needs libnvidia-ml.so.1",
		}}
	}
	driver := preflight.Finding{
		Check: "nvidia-driver", Level: preflight.OK,
		Message: fmt.Sprintf("driver %s, CUDA %s%s", orDash(inv.DriverVersion), orDash(inv.CUDAVersion), where),
	}
	if inv.DriverVersion == "" || inv.CUDAVersion == "" {
		driver.Level = preflight.Warn
		driver.Message += "; NVML did not report the driver's versions"
		driver.Fix = "check nvidia-smi; a driver/library version mismatch needs a reboot after a driver upgrade"
	}
	out := []preflight.Finding{driver}
	if err != nil {
		return append(out, preflight.Finding{
			Check: "gpus", Level: fail,
			Message: err.Error() + where,
			Fix:     "check nvidia-smi; a driver/library version mismatch needs a reboot after a driver upgrade",
		})
	}
	if len(inv.Devices) == 0 {
		return append(out, preflight.Finding{
			Check: "gpus", Level: fail,
			Message: "NVML sees no GPU" + where,
			Fix:     "check nvidia-smi and that the nvidia kernel module is loaded (lsmod | grep nvidia)",
		})
	}
	for _, d := range inv.Devices {
		g := preflight.Finding{
			Check: fmt.Sprintf("gpu %d", d.Index), Level: preflight.OK,
			Message: orDash(d.Name) + ", " + orDash(d.UUID),
		}
		if len(d.Errors) > 0 {
			g.Level = preflight.Warn
			g.Message += "; failed: " + failedQueries(d.Errors)
			g.Fix = fmt.Sprintf("check this GPU with nvidia-smi -i %d; a GPU that has fallen off the bus needs a reset or a reboot", d.Index)
		}
		out = append(out, g)
	}
	return out
}

// failedQueries lists failed NVML queries grouped by error, "memory, name:
// ERROR_GPU_IS_LOST; power: ERROR_UNKNOWN".
func failedQueries(errs map[string]string) string {
	if e, ok := errs["handle"]; ok {
		return "handle: " + e // and so every query
	}
	byErr := map[string][]string{}
	for q, e := range errs {
		byErr[e] = append(byErr[e], q)
	}
	type group struct {
		err     string
		queries []string
	}
	groups := make([]group, 0, len(byErr))
	for e, qs := range byErr {
		slices.Sort(qs)
		groups = append(groups, group{e, qs})
	}
	slices.SortFunc(groups, func(a, b group) int { return cmp.Compare(a.queries[0], b.queries[0]) })
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = strings.Join(g.queries, ", ") + ": " + g.err
	}
	return strings.Join(parts, "; ")
}

// stateDirFinding says whether internal/claims will keep GPU claims in the
// state directory, by its rules (see claims.openDir and checkDir), and
// whether every user can.
func stateDirFinding(s stateDirFacts) preflight.Finding {
	const check = "state-dir"
	fix := "sudo mkdir -p " + s.path + " && sudo chmod 1777 " + s.path
	fail := func(msg, fix string) preflight.Finding {
		return preflight.Finding{Check: check, Level: preflight.Fail, Message: msg, Fix: fix}
	}
	switch {
	case s.err != nil:
		return fail(s.err.Error(), fix)
	case !s.exists && s.parentWritable:
		return preflight.Finding{Check: check, Level: preflight.OK, Message: s.path + " does not exist yet; the first GPU claim (run or create with --gpus auto) creates it, mode 1777"}
	case !s.exists:
		return fail(s.path+" does not exist and this user cannot create it", fix)
	case s.symlink:
		return fail(s.path+" is a symlink: GPU claims refuse it", "remove it, then: "+fix)
	case !s.isDir:
		return fail(s.path+" is not a directory", "remove it, then: "+fix)
	case s.mode.Perm()&0o002 != 0 && s.mode&fs.ModeSticky == 0:
		return fail(fmt.Sprintf("%s is %s without the sticky bit: GPU claims refuse it (anyone could remove or replace them)", s.path, modeString(s.mode)),
			"sudo chmod 1777 "+s.path)
	case s.mode.Perm()&0o003 != 0o003:
		msg := fmt.Sprintf("%s is %s: other users cannot take GPU locks and leases", s.path, modeString(s.mode))
		if s.uid > 0 && s.uid != os.Geteuid() {
			msg = fmt.Sprintf("%s is %s and belongs to user %d: GPU claims refuse it", s.path, modeString(s.mode), s.uid)
		}
		return fail(msg, "sudo chmod 1777 "+s.path)
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
