package request

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/cli/opts"
	"github.com/docker/go-units"

	"github.com/perceptron/docker-perceptron/internal/alloc"
	"github.com/perceptron/docker-perceptron/internal/labels"
	"github.com/perceptron/docker-perceptron/internal/preflight"
	"github.com/perceptron/docker-perceptron/internal/presets"
)

// Run is a docker perceptron run or create, read once from the merged
// settings.
type Run struct {
	Command string   // "run" or "create"
	Presets []string // the presets applied, in order
	DryRun  bool
	Quiet   bool // -q: no pull output, no GPU line, no warnings
	GPUs    GPUs
	// Thresholds decide which GPUs are free for GPUs.Auto.
	Thresholds alloc.Thresholds
	Wait       Wait
	// Docker are docker's own options, without docker perceptron's.
	Docker []presets.Setting
	// Positional is IMAGE [COMMAND] [ARG...].
	Positional []string
	// Preflight is what the settings tell the pre-flight checks; the host's
	// facts are gathered into it later.
	Preflight preflight.Input
	// Open is the container port of the web page the presets' server
	// offers (see presets.Preset.Open); "" for none.
	Open string
}

// Input is what Build reads.
type Input struct {
	Command string
	Presets []string
	DryRun  bool
	Wait    string // --wait as given
	// Merged are the settings after presets.MergeUser; FromPresets and User
	// the two sides of that merge.
	Merged, FromPresets, User []presets.Setting
	Positional                []string
	// Training is whether a preset applied is a training preset.
	Training bool
	// Thresholds are the defaults of --gpu-max-*: the site's (see
	// alloc.SiteThresholds); zero means alloc.DefaultThresholds.
	Thresholds alloc.Thresholds
	// Open is the presets' web page port (presets.Store.Open).
	Open string
}

// Build reads the merged settings into a Run.
func Build(in Input) (Run, error) {
	r := Run{
		Command: in.Command, Presets: in.Presets, DryRun: in.DryRun, Positional: in.Positional,
		Thresholds: in.Thresholds, Open: in.Open,
	}
	if r.Thresholds == (alloc.Thresholds{}) {
		r.Thresholds = alloc.DefaultThresholds()
	}
	var err error
	if r.Wait, err = ParseWait(in.Wait); err != nil {
		return Run{}, err
	}
	if err := checkOwnLabels(in.Merged); err != nil {
		return Run{}, err
	}
	var requests []GPUs // every --gpus, as read
	cdi := ""           // a CDI GPU device, if any
	for _, s := range in.Merged {
		own, err := r.read(s)
		if err != nil {
			return Run{}, err
		}
		if !own {
			r.Docker = append(r.Docker, s)
		}
		switch {
		case s.Flag == "gpus":
			requests = append(requests, r.GPUs)
		case s.Flag == "device" && strings.HasPrefix(s.Value, "nvidia.com/gpu"):
			cdi = s.Value
		}
	}
	if err := checkAutoAlone(requests, cdi, r.Preflight.Env); err != nil {
		return Run{}, err
	}
	r.Preflight.GPURequested = r.GPUs.Requested()
	r.Preflight.GPUChoice = r.GPUs.Specific()
	r.Preflight.ShmSizeBytes = shmSize(in.User)
	r.Preflight.PresetShmSizeBytes = shmSize(in.FromPresets)
	r.Preflight.TrainingPreset = in.Training
	return r, nil
}

// read takes in one setting; own is true for docker perceptron's, which
// docker never sees.
func (r *Run) read(s presets.Setting) (own bool, err error) {
	p := &r.Preflight
	switch s.Flag {
	case OptGPUMaxMemory, OptGPUMaxUtil:
		return true, thresholds(&r.Thresholds, s.Flag, s.Value)
	case "gpus":
		g, err := ParseGPUs(s.Value)
		r.GPUs = g
		return g.Own(), err
	case "quiet":
		r.Quiet = s.Value == "true"
	case "privileged":
		p.Privileged = s.Value == "true"
	case "ipc":
		p.IPCHost = s.Value == "host"
	case "ulimit":
		p.Ulimits = append(p.Ulimits, s.Value)
	case "env":
		p.Env = append(p.Env, s.Value)
	case "env-file":
		// An env file's values come before -e's, which win.
		if kvs, err := opts.ReadKVEnvStrings([]string{s.Value}, nil); err == nil {
			p.Env = append(kvs, p.Env...)
		}
	}
	return false, nil
}

// checkOwnLabels refuses docker perceptron's own labels from the user or a
// preset (--label, --label-file): other users and later runs read them.
func checkOwnLabels(settings []presets.Setting) error {
	for _, s := range settings {
		var kvs []string
		switch s.Flag {
		case "label":
			kvs = []string{s.Value}
		case "label-file":
			var err error
			if kvs, err = opts.ReadKVStrings([]string{s.Value}, nil); err != nil {
				return fmt.Errorf("reading --label-file: %w", err)
			}
		}
		for _, kv := range kvs {
			if k, _, _ := strings.Cut(kv, "="); labels.Own(k) {
				return fmt.Errorf("invalid --%s %q: the %s labels are docker perceptron's own, set on the containers it creates; use a label of your own", s.Flag, k, labels.Prefix+"*")
			}
		}
	}
	return nil
}

// checkAutoAlone refuses --gpus auto next to another GPU request: a second
// --gpus, a CDI GPU device, or NVIDIA_VISIBLE_DEVICES, which would give the
// container other GPUs than the ones claimed.
func checkAutoAlone(requests []GPUs, cdi string, env []string) error {
	const fix = "let --gpus auto choose, or give docker's own --gpus device=… alone"
	if !slices.ContainsFunc(requests, func(g GPUs) bool { return g.Auto > 0 }) {
		return nil
	}
	switch {
	case cdi != "":
		return fmt.Errorf("--gpus auto cannot be combined with --device %s: %s", cdi, fix)
	case len(requests) > 1:
		return fmt.Errorf("--gpus auto cannot be combined with another --gpus: %s", fix)
	}
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == "NVIDIA_VISIBLE_DEVICES" {
			return fmt.Errorf("--gpus auto cannot be combined with NVIDIA_VISIBLE_DEVICES: %s", fix)
		}
	}
	return nil
}

// shmSize returns the last --shm-size of settings in bytes, 0 if none.
func shmSize(settings []presets.Setting) int64 {
	var n int64
	for _, s := range settings {
		if s.Flag == "shm-size" {
			if b, err := units.RAMInBytes(s.Value); err == nil {
				n = b
			}
		}
	}
	return n
}

// Claimed is what docker perceptron adds to a run: the GPUs it chose (by
// UUID) with the claim's token, and who runs it.
type Claimed struct {
	UUIDs []string
	// CDI: the daemon takes GPUs as CDI devices (see
	// preflight.DaemonInfo.GPUsByCDI), so UUIDs go to docker as
	// --device nvidia.com/gpu=UUID, not --gpus "device=…".
	CDI bool
	// Count stands for GPUs that could not be chosen (a dry run without
	// NVML): docker's nearest equivalent, --gpus COUNT (its first COUNT).
	Count int
	Token string // "" for a dry run, which claims nothing
	User  string // "" when unknown
	// CIDFile is where docker writes the container's ID: the user's
	// --cidfile (see Run.CIDFile), else one docker perceptron adds.
	CIDFile string
}

// Detached reports -d: docker run returns once the container started.
func (r Run) Detached() bool {
	d := false
	for _, s := range r.Docker {
		if s.Flag == "detach" {
			d = s.Value != "false"
		}
	}
	return d
}

// CIDFile is the user's --cidfile, "" when not given.
func (r Run) CIDFile() string {
	file := ""
	for _, s := range r.Docker {
		if s.Flag == "cidfile" {
			file = s.Value
		}
	}
	return file
}

// Args returns the docker run/create arguments: docker's options with the
// chosen GPUs and docker perceptron's labels, then IMAGE [COMMAND] [ARG...].
// The user's own settings win over the NVIDIA_VISIBLE_DEVICES set here.
func (r Run) Args(c Claimed) []string {
	var add []presets.Setting
	if c.User != "" {
		add = append(add, presets.Setting{Flag: "label", Value: labels.User + "=" + c.User})
	}
	if len(r.Presets) > 0 {
		add = append(add, presets.Setting{Flag: "label", Value: labels.Presets + "=" + strings.Join(r.Presets, ",")})
	}
	if len(c.UUIDs) > 0 {
		list := strings.Join(c.UUIDs, ",")
		if c.CDI {
			// One CDI device per GPU, always by UUID: indexes in a CDI
			// spec are its generator's, and MIG devices have UUIDs only.
			for _, u := range c.UUIDs {
				add = append(add, presets.Setting{Flag: "device", Value: CDIDevice(u)})
			}
		} else {
			// The stock --gpus parser reads CSV: a list of devices is quoted.
			add = append(add,
				presets.Setting{Flag: "gpus", Value: `"device=` + list + `"`},
				presets.Setting{Flag: "env", Value: "NVIDIA_VISIBLE_DEVICES=" + list},
			)
		}
		add = append(add, presets.Setting{Flag: "label", Value: labels.GPUs + "=" + list})
	}
	if len(c.UUIDs) == 0 && c.Count > 0 {
		add = append(add, presets.Setting{Flag: "gpus", Value: strconv.Itoa(c.Count)})
	}
	if c.Token != "" {
		add = append(add,
			presets.Setting{Flag: "label", Value: labels.Claim + "=" + c.Token},
			presets.Setting{Flag: "label", Value: labels.Command + "=" + r.Command},
		)
	}
	if c.CIDFile != "" && c.CIDFile != r.CIDFile() {
		add = append(add, presets.Setting{Flag: "cidfile", Value: c.CIDFile})
	}
	return append(presets.Args(presets.Merge(add, r.Docker)), r.Positional...)
}

// CDIDevice is the CDI name of an NVIDIA GPU or MIG device by its UUID,
// as nvidia-ctk cdi generate names them: nvidia.com/gpu=UUID.
func CDIDevice(uuid string) string { return "nvidia.com/gpu=" + uuid }
