package preflight

import (
	"cmp"
	"errors"
	"fmt"
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

// Doctor turns the facts into one finding per line of the report.
func Doctor(f DoctorFacts) []Finding {
	var out []Finding
	out = append(out, daemonFinding(f))
	if f.Host.DaemonErr == nil {
		out = append(out,
			GPUProvider(f.Host.Daemon),
			DefaultRuntime(f.Host.Daemon),
			ToolkitEnvvar(f.Host.Daemon, f.Host.Toolkit),
			CgroupDeviceAccess(f.Host.Daemon, f.Host.DevCharLinks),
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
	}
	out = append(out, policyFinding(f.Policy))
	out = append(out, stateDirFinding(f.StateDir))
	out = append(out, presetsFinding(f.Presets))
	return out
}

func presetsFinding(p PresetFacts) Finding {
	const check = "presets"
	if p.Err != nil {
		return Finding{
			Check: check, Level: Fail,
			Message: p.Err.Error(),
			Fix:     "fix the file; 'docker perceptron presets ls' shows what loads",
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
	msg := fmt.Sprintf("%d presets load (%s)", p.Count, strings.Join(from, ", "))
	if len(absent) > 0 {
		msg += "; no file at " + strings.Join(absent, ", ")
	}
	return Finding{Check: check, Level: OK, Message: msg}
}

func daemonFinding(f DoctorFacts) Finding {
	if f.Host.DaemonErr != nil {
		return Finding{
			Check: "daemon", Level: Fail,
			Message: f.Host.DaemonErr.Error(),
			Fix:     "start the daemon (sudo systemctl start docker, or systemctl --user start docker when rootless) or check DOCKER_HOST and `docker context ls`",
		}
	}
	d := f.Host.Daemon
	msg := "Docker " + orDash(d.ServerVersion)
	if d.APIVersion != "" {
		msg += " (API " + d.APIVersion + ")"
	}
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
	if d.OperatingSystem != "" {
		msg += ", " + d.OperatingSystem
	}
	return Finding{Check: "daemon", Level: OK, Message: msg}
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
		return found[0]
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
		fail, where = Warn, " (this host; the daemon is remote)"
	}
	inv, err := f.Host.Inventory, f.Host.NVMLErr
	if err != nil && (errors.Is(err, gpus.ErrNoDriver) || inv.DriverVersion == "" && inv.CUDAVersion == "") {
		return []Finding{{
			Check: "nvidia-driver", Level: fail,
			Message: err.Error() + where,
			Fix:     "install the NVIDIA driver for your GPUs and check that nvidia-smi works; the plugin needs libnvidia-ml.so.1",
		}}
	}
	driver := Finding{
		Check: "nvidia-driver", Level: OK,
		Message: fmt.Sprintf("driver %s, CUDA %s%s", orDash(inv.DriverVersion), orDash(inv.CUDAVersion), where),
	}
	if inv.DriverVersion == "" || inv.CUDAVersion == "" {
		driver.Level = Warn
		driver.Message += "; NVML did not report the driver's versions"
		driver.Fix = "check nvidia-smi; a driver/library version mismatch needs a reboot after a driver upgrade"
	}
	out := []Finding{driver}
	if err != nil {
		return append(out, Finding{
			Check: "gpus", Level: fail,
			Message: err.Error() + where,
			Fix:     "check nvidia-smi; a driver/library version mismatch needs a reboot after a driver upgrade",
		})
	}
	if len(inv.Devices) == 0 {
		return append(out, Finding{
			Check: "gpus", Level: fail,
			Message: "NVML sees no GPU" + where,
			Fix:     "check nvidia-smi and that the nvidia kernel module is loaded (lsmod | grep nvidia)",
		})
	}
	for _, d := range inv.Devices {
		g := Finding{
			Check: fmt.Sprintf("gpu %d", d.Index), Level: OK,
			Message: orDash(d.Name) + ", " + orDash(d.UUID),
		}
		if len(d.Errors) > 0 {
			g.Level = Warn
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

// stateDirFinding says whether internal/ledger will keep GPU claims in the
// state directory, by its rule (ledger.JudgeDir), and whether every user can.
func stateDirFinding(s ledger.DirState) Finding {
	const check = "state-dir"
	fix := "sudo mkdir -p " + s.Path + " && sudo chmod 1777 " + s.Path
	fail := func(msg, fix string) Finding {
		return Finding{Check: check, Level: Fail, Message: msg, Fix: fix}
	}
	switch {
	case s.Err != nil:
		return fail(s.Err.Error(), fix)
	case !s.Exists && s.CanCreate:
		return Finding{Check: check, Level: OK, Message: s.Path + " does not exist yet; the first GPU claim (run or create with --gpus auto) creates it, mode 1777"}
	case !s.Exists:
		return fail(s.Path+" does not exist and this user cannot create it", fix)
	case s.Symlink:
		return fail(s.Path+" is a symlink: GPU claims refuse it", "remove it, then: "+fix)
	case !s.IsDir:
		return fail(s.Path+" is not a directory", "remove it, then: "+fix)
	}
	switch s.Problem() {
	case ledger.DirNotSticky:
		return fail(fmt.Sprintf("%s is %s without the sticky bit: GPU claims refuse it (anyone could remove or replace them)", s.Path, s.ModeString()),
			"sudo chmod 1777 "+s.Path)
	case ledger.DirForeign:
		return fail(fmt.Sprintf("%s is %s and belongs to user %d: GPU claims trust only a directory of root's or yours", s.Path, s.ModeString(), s.UID),
			"ask an administrator to run `sudo ./install.sh --system` (a root-owned shared directory), or set "+ledger.EnvStateDir+" to a directory of your own")
	}
	if !s.Shared() {
		return fail(fmt.Sprintf("%s is %s: other users cannot take GPU locks and leases", s.Path, s.ModeString()), "sudo chmod 1777 "+s.Path)
	}
	return Finding{Check: check, Level: OK, Message: fmt.Sprintf("%s (%s)", s.Path, s.ModeString())}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
