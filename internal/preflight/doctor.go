package preflight

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/ledger"
)

// DoctorFacts is everything doctor reports on, gathered up front so that
// Doctor is a pure function.
type DoctorFacts struct {
	Host     Host // gathered with NVML and /dev
	StateDir ledger.DirState
	Presets  PresetFacts
	Policy   PolicyFacts
}

// PresetFacts describes the preset files.
type PresetFacts struct {
	Files []PresetFile // in load order
	Count int          // presets that load, built-in ones included
	Err   error        // the first error loading them (file:line)
}

// PresetFile is a preset file and whether it exists.
type PresetFile struct {
	Path   string
	Exists bool
}

// Doctor turns the facts into one finding per line of the report. Each
// Message and Fix is one short line for the table; where that leaves
// something out, Detail has it whole (--format json).
func Doctor(f DoctorFacts) []Finding {
	var out []Finding
	out = append(out, daemonFinding(f))
	if f.Host.DaemonErr == nil {
		out = append(out,
			doctorGPUProvider(f.Host.Daemon),
			DefaultRuntime(f.Host.Daemon),
			ToolkitEnvvar(f.Host.Daemon, f.Host.Toolkit),
			doctorCgroup(f),
			doctorMemlock(f),
		)
	}
	out = append(out, nvmlFindings(f)...)
	if f.Host.NVMLErr == nil {
		if a, ok := accountingFinding(f.Host.Inventory, f.Policy.Policy.MaxIdle); ok {
			out = append(out, a)
		}
		if n, ok := ngcFinding(f.Host.Inventory); ok {
			out = append(out, n)
		}
		if c, ok := CDICoverage(f.Host.Daemon, f.Host.Inventory); ok && f.Host.DaemonErr == nil {
			out = append(out, c)
		}
	}
	out = append(out, policyFinding(f.Policy))
	out = append(out, stateDirFinding(f.StateDir))
	out = append(out, presetsFinding(f.Presets))
	return out
}

// shorten keeps f's whole text as its Detail and shows msg and fix in the
// table instead: for the checks that run shares, whose findings say
// everything in one line.
func shorten(f Finding, msg, fix string) Finding {
	f.Detail = f.Line()
	f.Message, f.Fix = msg, fix
	return f
}

// headline is an error's first clause, "cannot reach the docker daemon at
// unix:///var/run/docker.sock" of "…: connection refused".
func headline(err error) string {
	h, _, _ := strings.Cut(err.Error(), ": ")
	h, _, _ = strings.Cut(h, "; ")
	return h
}

// doctorGPUProvider is GPUProvider in short.
func doctorGPUProvider(d DaemonInfo) Finding {
	f := GPUProvider(d)
	switch {
	case f.Level == OK:
		return f
	case !d.Local:
		return shorten(f, "the remote daemon reports no nvidia runtime and no NVIDIA CDI devices",
			"on the daemon's host: install the NVIDIA Container Toolkit")
	case d.HookPathUnread:
		return shorten(f, "unknown whether dockerd can give GPUs: its PATH cannot be read",
			"run 'sudo docker perceptron doctor' to check")
	}
	return shorten(f, "no nvidia runtime, CDI spec or hook: containers cannot get GPUs",
		"install the NVIDIA Container Toolkit and register it with docker")
}

// doctorCgroup is CgroupDeviceAccess in short.
func doctorCgroup(f DoctorFacts) Finding {
	c := CgroupDeviceAccess(f.Host.Daemon, f.Host.DevCharLinks)
	if c.Level == OK {
		return c
	}
	return shorten(c, "running containers can lose their GPUs on systemctl daemon-reload",
		"sudo nvidia-ctk system create-dev-char-symlinks --create-all")
}

func presetsFinding(p PresetFacts) Finding {
	const check = "presets"
	if p.Err != nil {
		return Finding{
			Check: check, Level: Fail,
			Message: "a preset file does not load: " + headline(p.Err),
			Fix:     "fix the file; 'docker perceptron presets ls' shows what loads",
			Detail:  p.Err.Error(),
		}
	}
	from, absent := []string{"built-in"}, []string(nil)
	for _, file := range p.Files {
		if file.Exists {
			from = append(from, file.Path)
		} else {
			absent = append(absent, file.Path)
		}
	}
	// The files are in Detail: their paths alone can fill a line.
	msg := fmt.Sprintf("%d presets load", p.Count)
	if n := len(from) - 1; n > 0 {
		msg += fmt.Sprintf(" (built-in and %d file%s)", n, plural(n))
	} else {
		msg += " (built-in)"
	}
	detail := fmt.Sprintf("%d presets load (%s)", p.Count, strings.Join(from, ", "))
	if len(absent) > 0 {
		detail += "; no file at " + strings.Join(absent, ", ")
	}
	return Finding{Check: check, Level: OK, Message: msg, Detail: detail}
}

func daemonFinding(f DoctorFacts) Finding {
	if err := f.Host.DaemonErr; err != nil {
		return Finding{
			Check: "daemon", Level: Fail,
			Message: headline(err),
			Fix:     "start it (sudo systemctl start docker) or check `docker context ls`",
			Detail: err.Error() + " (fix: start the daemon (sudo systemctl start docker, or systemctl --user start docker " +
				"when rootless) or check DOCKER_HOST and `docker context ls`)",
		}
	}
	d := f.Host.Daemon
	msg := "Docker " + orDash(d.ServerVersion)
	if f.Host.DockerHost != "" {
		msg += " at " + f.Host.DockerHost
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
	detail := msg
	if d.APIVersion != "" {
		detail += ", API " + d.APIVersion
	}
	if d.OperatingSystem != "" {
		detail += ", " + d.OperatingSystem
	}
	return Finding{Check: "daemon", Level: OK, Message: msg, Detail: detail}
}

// doctorMemlock tells whether the training presets' --ulimit memlock=-1
// will be accepted by this daemon.
func doctorMemlock(f DoctorFacts) Finding {
	hard, lacks := f.Host.MemlockHard, f.Host.LacksSysResource
	if !f.Host.Daemon.Local {
		// This host's limits say nothing about a remote daemon's.
		hard, lacks = 0, false
	}
	// With nothing but the ulimit set, Run only runs the memlock check.
	found := Run(Input{
		Daemon:               f.Host.Daemon,
		Ulimits:              []string{"memlock=-1"},
		HostMemlockHard:      hard,
		HostLacksSysResource: lacks,
	})
	if len(found) > 0 {
		limit, fix := "its hard limit", "use --ulimit memlock=<ulimit -H -l, in bytes> or drop --ulimit memlock"
		if hard > 0 {
			limit, fix = size(hard), fmt.Sprintf("use --ulimit memlock=%d (the hard limit) or drop it", hard)
		}
		msg := fmt.Sprintf("--ulimit memlock=-1 fails: containers cannot raise memlock above %s", limit)
		if f.Host.Daemon.Rootless {
			msg = fmt.Sprintf("--ulimit memlock=-1 fails: a rootless daemon cannot go above %s", limit)
		}
		return shorten(found[0], msg, fix)
	}
	msg := "--ulimit memlock=-1 allowed (rootful daemon)"
	if f.Host.Daemon.Rootless {
		msg = "--ulimit memlock=-1 allowed (unlimited for this user)"
	}
	return Finding{Check: "memlock", Level: OK, Message: msg}
}

func nvmlFindings(f DoctorFacts) []Finding {
	// NVML reads this host; with a remote daemon its GPUs are elsewhere and
	// a missing driver here is no failure.
	fail, where := Fail, ""
	if f.Host.DaemonErr == nil && !f.Host.Daemon.Local {
		fail, where = Warn, " (here; the daemon is remote)"
	}
	const reboot = "check nvidia-smi; after a driver upgrade, reboot"
	const rebootDetail = "check nvidia-smi; a driver/library version mismatch needs a reboot after a driver upgrade"
	inv, err := f.Host.Inventory, f.Host.NVMLErr
	if err != nil && (errors.Is(err, gpus.ErrNoDriver) || inv.DriverVersion == "" && inv.CUDAVersion == "") {
		return []Finding{{
			Check: "nvidia-driver", Level: fail,
			Message: headline(err) + where,
			Fix:     "install the NVIDIA driver; nvidia-smi must work",
			Detail:  err.Error() + where + " (fix: install the NVIDIA driver for your GPUs and check that nvidia-smi works; the plugin needs libnvidia-ml.so.1)",
		}}
	}
	driver := Finding{
		Check: "nvidia-driver", Level: OK,
		Message: fmt.Sprintf("driver %s, CUDA %s%s", orDash(inv.DriverVersion), orDash(inv.CUDAVersion), where),
	}
	if inv.DriverVersion == "" || inv.CUDAVersion == "" {
		driver.Level = Warn
		driver.Message += "; versions unknown to NVML"
		driver.Fix = reboot
		driver.Detail = "NVML did not report the driver's versions (fix: " + rebootDetail + ")"
	}
	out := []Finding{driver}
	if err != nil {
		return append(out, Finding{
			Check: "gpus", Level: fail,
			Message: headline(err) + where,
			Fix:     reboot,
			Detail:  err.Error() + where + " (fix: " + rebootDetail + ")",
		})
	}
	if len(inv.Devices) == 0 {
		return append(out, Finding{
			Check: "gpus", Level: fail,
			Message: "NVML sees no GPU" + where,
			Fix:     "check nvidia-smi, and lsmod | grep nvidia for the kernel module",
		})
	}
	for _, d := range inv.Devices {
		g := Finding{
			Check: fmt.Sprintf("gpu %d", d.Index), Level: OK,
			Message: orDash(d.Name) + ", " + orDash(d.UUID),
		}
		if len(d.Errors) > 0 {
			g.Level = Warn
			g.Detail = g.Message + "; failed: " + failedQueries(d.Errors) +
				fmt.Sprintf(" (fix: check this GPU with nvidia-smi -i %d; a GPU that has fallen off the bus needs a reset or a reboot)", d.Index)
			g.Message = orDash(d.Name) + "; NVML failed: " + strings.Join(slices.Sorted(maps.Keys(d.Errors)), ", ")
			if _, lost := d.Errors["handle"]; lost {
				g.Message = "NVML cannot open it: " + d.Errors["handle"]
			}
			g.Fix = fmt.Sprintf("nvidia-smi -i %d; a GPU fallen off the bus needs a reset or reboot", d.Index)
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

// stateDirFinding says whether internal/ledger will keep GPU claims in the
// state directory, by its rule (ledger.JudgeDir), and who can use it. A
// directory the rule accepts and this user can write works for this user;
// when other users cannot use it too, claims are coordinated only among
// this user's runs: a warning, not a failure.
func stateDirFinding(s ledger.DirState) Finding {
	const check = "state-dir"
	create := "sudo install -d -m 1777 " + s.Path
	fail := func(msg, fix, detail string) Finding {
		return Finding{Check: check, Level: Fail, Message: msg, Fix: fix, Detail: detail}
	}
	switch {
	case s.Err != nil:
		return fail("cannot look up "+s.Path, create, s.Err.Error())
	case !s.Exists && s.CanCreate:
		return Finding{Check: check, Level: OK, Message: s.Path + ": none yet; the first GPU claim makes it (1777)",
			Detail: s.Path + " does not exist yet; the first GPU claim (run or create with --gpus auto) creates it, mode 1777"}
	case !s.Exists:
		return fail(s.Path+" does not exist and this user cannot create it", create, "")
	case s.Symlink:
		return fail(s.Path+" is a symlink: GPU claims refuse it", "remove it, then: "+create, "")
	case !s.IsDir:
		return fail(s.Path+" is not a directory", "remove it, then: "+create, "")
	}
	mode := s.ModeString()
	switch s.Problem() {
	case ledger.DirNotSticky:
		return fail(fmt.Sprintf("%s is %s, not sticky: GPU claims refuse it", s.Path, mode),
			"sudo chmod 1777 "+s.Path,
			fmt.Sprintf("%s is %s without the sticky bit: GPU claims refuse it (anyone could remove or replace them)", s.Path, mode))
	case ledger.DirForeign:
		return fail(fmt.Sprintf("%s belongs to user %d: GPU claims trust only root's or yours", s.Path, s.UID),
			"sudo ./install.sh --system, or set "+ledger.EnvStateDir+" to your own",
			fmt.Sprintf("%s is %s and belongs to user %d: GPU claims trust only a directory of root's or yours "+
				"(fix: ask an administrator to run `sudo ./install.sh --system` (a root-owned shared directory), or set %s to a directory of your own)",
				s.Path, mode, s.UID, ledger.EnvStateDir))
	}
	if s.NoAccess {
		return fail(fmt.Sprintf("%s is %s: this user cannot take the GPU lock there", s.Path, mode), "sudo chmod 1777 "+s.Path, "")
	}
	if !s.Shared() {
		chmod := "chmod 1777 " + s.Path
		if s.UID == 0 && os.Geteuid() != 0 {
			chmod = "sudo " + chmod
		}
		fix := chmod + " if it is meant to be shared"
		if s.Path != ledger.DefaultStateDir && s.Path != ledger.SystemStateDir {
			fix = "unset " + ledger.EnvStateDir + ", or chmod 1777 it to share it"
		}
		return Finding{
			Check: check, Level: Warn,
			Message: fmt.Sprintf("%s (%s): only your own runs see your GPU claims", s.Path, mode),
			Fix:     fix,
			Detail: fmt.Sprintf("%s is %s, private: other users' docker perceptron cannot take the GPU lock or see your claims, "+
				"so claims are coordinated only among your own runs (fix: %s)", s.Path, mode, shareFix(s.Path, chmod)),
		}
	}
	return Finding{Check: check, Level: OK, Message: fmt.Sprintf("%s (%s)", s.Path, mode)}
}

// shareFix is how to share claims with every user of the host: the shared
// default directory, the system one, or chmod.
func shareFix(path, chmod string) string {
	system := ledger.SystemStateDir + " after sudo ./install.sh --system"
	if path == ledger.DefaultStateDir || path == ledger.SystemStateDir {
		return chmod + " if it is meant to be shared, or use " + system
	}
	return "unset " + ledger.EnvStateDir + " to use the shared default " + ledger.DefaultStateDir + ", or " + system +
		"; or " + chmod + " if it is meant to be shared"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
