package preflight

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// IsNvidiaRuntime reports whether an OCI runtime name is NVIDIA's ("nvidia",
// "nvidia-cdi", "nvidia-legacy"...), the same rule internal/holders applies
// (Reservation.EnvApplies): such a runtime acts on NVIDIA_VISIBLE_DEVICES.
func IsNvidiaRuntime(name string) bool {
	return strings.Contains(strings.ToLower(name), "nvidia")
}

// DefaultRuntime warns when the daemon's default runtime is NVIDIA's: every
// container whose image sets NVIDIA_VISIBLE_DEVICES (NGC images set "all")
// then gets those GPUs without asking, outside any GPU claim. The toolkit's
// own tool sets it only when asked to: `nvidia-ctk runtime configure
// --set-as-default` adds the runtime "as the default runtime", plain
// `nvidia-ctk runtime configure --runtime=docker` only registers it
// (https://pkg.go.dev/github.com/NVIDIA/nvidia-container-toolkit/cmd/nvidia-ctk,
// "Configure runtimes"); NVIDIA's user guide calls "default-runtime":
// "nvidia" in daemon.json optional
// (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/1.10.0/user-guide.html,
// "Daemon configuration file").
func DefaultRuntime(d DaemonInfo) Finding {
	const check = "default-runtime"
	if !IsNvidiaRuntime(d.DefaultRuntime) {
		return Finding{Check: check, Level: OK, Message: "default runtime " + orUnknown(d.DefaultRuntime)}
	}
	daemonJSON, restart := "/etc/docker/daemon.json", "sudo systemctl restart docker"
	if d.Rootless {
		daemonJSON, restart = "~/.config/docker/daemon.json", "systemctl --user restart docker"
	}
	fix := fmt.Sprintf(`remove "default-runtime": %q from %s (keep it under "runtimes"; or drop dockerd's --default-runtime flag), then %s; GPUs are then asked for with --gpus`,
		d.DefaultRuntime, daemonJSON, restart)
	short := `remove "default-runtime" from daemon.json, then restart docker`
	if !d.Local {
		fix = "on the daemon's host: " + fix
		short = `on the daemon's host: remove "default-runtime" from daemon.json`
	}
	f := Finding{
		Check: check, Level: Warn,
		Message: fmt.Sprintf("default runtime %s: every container whose image sets NVIDIA_VISIBLE_DEVICES (NGC images: all) gets those GPUs without asking, outside any GPU claim", d.DefaultRuntime),
		Fix:     fix,
	}
	f.Detail = f.Line()
	f.Message = fmt.Sprintf("default runtime %s: NGC images get every GPU, outside any claim", d.DefaultRuntime)
	f.Fix = short
	return f
}

// ToolkitEnvvar warns when the NVIDIA Container Toolkit on this host lets
// an unprivileged container pick its GPUs: by NVIDIA_VISIBLE_DEVICES
// (accept-nvidia-visible-devices-envvar-when-unprivileged, true unless set
// false) or by volume mounts (accept-nvidia-visible-devices-as-volume-mounts).
// The variable matters only where a runtime of NVIDIA's is registered (any
// user can ask for one with --runtime); the mounts wherever the hook runs,
// --gpus included. t is this host's file, so a remote daemon's is unknown.
//
// The fix sets the first false and does not pair it with volume mounts:
// NVIDIA pairs the two for Kubernetes, where only the device plugin writes
// those mounts (https://docs.google.com/document/d/1zy0key-EL6JH50MZgwg96RPYxxXXnVUdxLZwGiyqLd8,
// linked from https://github.com/NVIDIA/k8s-device-plugin/issues/203); under
// docker anyone can write one (-v /dev/null:/var/run/nvidia-container-devices/all).
// The hook ignores the variable in an unprivileged container when the
// setting is false, and docker's --gpus through nvidia-container-runtime-hook
// hands its GPUs over in the same variable
// (https://github.com/moby/moby/blob/master/daemon/nvidia_linux.go
// setNvidiaGPUs; https://github.com/NVIDIA/nvidia-container-toolkit/blob/main/internal/config/image/cuda_image.go
// VisibleDevices), so the fix says that GPUs then come through CDI.
func ToolkitEnvvar(d DaemonInfo, t ToolkitConfig) Finding {
	const check = "toolkit-env"
	switch {
	case !d.Local:
		return Finding{Check: check, Level: OK, Message: "not checked: the daemon is remote"}
	case !t.Exists:
		return Finding{Check: check, Level: OK, Message: "no " + t.Path,
			Detail: "no " + t.Path + " (the NVIDIA Container Toolkit is not installed here, or reads its config elsewhere)"}
	case t.Err != nil:
		return Finding{
			Check: check, Level: Warn,
			Message: "cannot read " + t.Path,
			Fix:     "check it: sudo nvidia-ctk config prints what the toolkit reads",
			Detail: "cannot read the NVIDIA Container Toolkit's config: " + t.Err.Error() +
				" (fix: check the file (sudo nvidia-ctk config --config-file=" + t.Path + " prints the settings the toolkit reads))",
		}
	}
	var runtimes []string
	for _, r := range d.Runtimes {
		if IsNvidiaRuntime(r) {
			runtimes = append(runtimes, r)
		}
	}
	envvar := keyEnvvarUnprivileged + " = " + fmt.Sprint(t.EnvvarUnprivileged)
	if !t.EnvvarSet {
		envvar = keyEnvvarUnprivileged + " unset (true)"
	}
	var how, sets []string
	if t.EnvvarUnprivileged && len(runtimes) > 0 {
		how = append(how, fmt.Sprintf("docker run --runtime=%s -e NVIDIA_VISIBLE_DEVICES=all (%s)", runtimes[0], envvar))
		sets = append(sets, keyEnvvarUnprivileged+"=false")
	}
	if t.VolumeMounts {
		// The hook reads the mounts first, under --gpus too.
		how = append(how, fmt.Sprintf("docker run --gpus 1 -v /dev/null:/var/run/nvidia-container-devices/all (%s = true)", keyVolumeMounts))
		sets = append(sets, keyVolumeMounts+"=false")
	}
	switch {
	case len(how) > 0:
	case t.EnvvarUnprivileged:
		return Finding{Check: check, Level: OK, Message: "no nvidia runtime, so NVIDIA_VISIBLE_DEVICES alone gives no GPU",
			Detail: t.Path + ": " + envvar + "; no nvidia runtime, so the variable alone gives no GPU"}
	default:
		return Finding{Check: check, Level: OK, Message: "unprivileged containers get only the GPUs docker gives them",
			Detail: t.Path + ": " + envvar + ": unprivileged containers get only the GPUs docker gives them"}
	}
	fix := "sudo nvidia-ctk config --config-file=" + t.Path
	for _, s := range sets {
		fix += " --set " + s
	}
	fix += " --in-place"
	if t.EnvvarUnprivileged && len(runtimes) > 0 {
		fix += "; unprivileged containers then get GPUs only through CDI (--device nvidia.com/gpu=N, or --gpus where docker maps it to CDI): " +
			"docker's --gpus through " + HookName + " passes them in NVIDIA_VISIBLE_DEVICES too"
	}
	short := "set " + sets[0]
	if len(sets) > 1 {
		short = "set the two accept-nvidia-visible-devices-* to false"
	}
	return Finding{
		Check: check, Level: Warn,
		Message: "any user can take every GPU without asking, outside any GPU claim",
		Fix:     short,
		Detail:  "any user can take every GPU without asking, outside any GPU claim: " + strings.Join(how, "; or ") + " (fix: " + fix + ")",
	}
}

// DefaultToolkitConfig is where the NVIDIA Container Toolkit (its runtime
// and its hook) reads its settings. The toolkit also honours
// NVIDIA_CTK_CONFIG_FILE_PATH and XDG_CONFIG_HOME in dockerd's environment,
// which doctor does not see.
// https://github.com/NVIDIA/nvidia-container-toolkit/blob/main/api/config/v1/config.go (GetConfigFilePath)
const DefaultToolkitConfig = "/etc/nvidia-container-runtime/config.toml"

// The toolkit's top-level settings that decide who may ask for GPUs by
// NVIDIA_VISIBLE_DEVICES. Unset, the first is true and the second false
// (GetDefault in api/config/v1/config.go; the generated config.toml carries
// both commented out with these values, api/config/v1/toml.go
// commentDefaults):
// https://github.com/NVIDIA/nvidia-container-toolkit/blob/main/api/config/v1/config.go
const (
	keyEnvvarUnprivileged = "accept-nvidia-visible-devices-envvar-when-unprivileged"
	keyVolumeMounts       = "accept-nvidia-visible-devices-as-volume-mounts"
)

// ToolkitConfig is what doctor needs of the NVIDIA Container Toolkit's
// config.toml on this host.
type ToolkitConfig struct {
	Path   string
	Exists bool
	Err    error // the file exists but could not be read or parsed
	// EnvvarUnprivileged is accept-nvidia-visible-devices-envvar-when-
	// unprivileged as the toolkit reads it (true when unset, see EnvvarSet):
	// an unprivileged container's NVIDIA_VISIBLE_DEVICES gives it GPUs.
	EnvvarUnprivileged bool
	EnvvarSet          bool
	// VolumeMounts is accept-nvidia-visible-devices-as-volume-mounts (false
	// when unset): a bind mount of /dev/null on
	// /var/run/nvidia-container-devices/<GPU> gives the container that GPU.
	VolumeMounts bool
}

// ReadToolkitConfig reads the two settings from the config.toml at path.
// No file is no error: the toolkit is not installed here, or reads its
// config elsewhere.
func ReadToolkitConfig(path string) ToolkitConfig {
	t := ToolkitConfig{Path: path, EnvvarUnprivileged: true}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return t
	}
	t.Exists = true
	if err != nil {
		t.Err = err
		return t
	}
	defer f.Close()
	vals, err := topLevelBools(f, keyEnvvarUnprivileged, keyVolumeMounts)
	if err != nil {
		t.Err = fmt.Errorf("%s: %w", path, err)
		return t
	}
	if v, ok := vals[keyEnvvarUnprivileged]; ok {
		t.EnvvarUnprivileged, t.EnvvarSet = v, true
	}
	t.VolumeMounts = vals[keyVolumeMounts]
	return t
}

// topLevelBools reads the boolean values of keys from a TOML document's
// top level: the lines before its first [table] or [[array]] header. It
// knows enough TOML for that: comments, bare and quoted keys, values that
// span lines (arrays, multi-line strings), and a key given twice is an
// error as it is in TOML. A key that is absent is absent from the map.
func topLevelBools(r io.Reader, keys ...string) (map[string]bool, error) {
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	vals := map[string]bool{}
	seen := map[string]int{} // line of each key read
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var cont valueScanner // a value that spans lines
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if cont.open() {
			cont.scan(line)
			continue
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		if trimmed[0] == '[' {
			break // the first table: the top level is over
		}
		key, value, ok := splitKeyValue(trimmed)
		if !ok {
			return nil, fmt.Errorf("line %d: expected key = value", n)
		}
		cont.scan(value)
		if !want[key] {
			continue
		}
		if first, dup := seen[key]; dup {
			return nil, fmt.Errorf("line %d: %s is already set on line %d", n, key, first)
		}
		seen[key] = n
		switch v := stripComment(value); v {
		case "true", "false":
			vals[key] = v == "true"
		default:
			return nil, fmt.Errorf("line %d: %s = %s: want true or false", n, key, v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return vals, nil
}

// splitKeyValue splits `key = value` (the key bare, "basic" or 'literal';
// dotted keys are returned whole, never matching a plain key).
func splitKeyValue(line string) (key, value string, ok bool) {
	if q := line[0]; q == '"' || q == '\'' {
		end := strings.IndexByte(line[1:], q)
		if end < 0 {
			return "", "", false
		}
		key, line = line[1:1+end], line[2+end:]
		// A quoted part followed by a dot is a dotted key: keep it whole.
		if rest := strings.TrimSpace(line); strings.HasPrefix(rest, ".") {
			k, v, ok := strings.Cut(rest, "=")
			return string(q) + key + string(q) + strings.TrimSpace(k), strings.TrimSpace(v), ok
		}
		rest, found := strings.CutPrefix(strings.TrimSpace(line), "=")
		return key, strings.TrimSpace(rest), found
	}
	k, v, found := strings.Cut(line, "=")
	if !found {
		return "", "", false
	}
	return strings.TrimSpace(k), strings.TrimSpace(v), true
}

// stripComment drops a trailing comment from a value without strings in
// it (a boolean's), and the spaces before it.
func stripComment(v string) string {
	v, _, _ = strings.Cut(v, "#")
	return strings.TrimSpace(v)
}

// valueScanner follows a TOML value across lines: open brackets (arrays,
// inline tables) and multi-line strings, so that a line inside one is not
// taken for a key or a table header.
type valueScanner struct {
	depth int    // open [ and {
	multi string // `"""` or `'''` while inside a multi-line string
}

func (s *valueScanner) open() bool { return s.depth > 0 || s.multi != "" }

func (s *valueScanner) scan(v string) {
	for i := 0; i < len(v); i++ {
		if s.multi != "" {
			if strings.HasPrefix(v[i:], s.multi) {
				i += len(s.multi) - 1
				s.multi = ""
			} else if s.multi == `"""` && v[i] == '\\' {
				i++
			}
			continue
		}
		switch c := v[i]; c {
		case '#':
			return
		case '[', '{':
			s.depth++
		case ']', '}':
			s.depth--
		case '"', '\'':
			if q := strings.Repeat(string(c), 3); strings.HasPrefix(v[i:], q) {
				s.multi = q
				i += 2
				continue
			}
			// A one-line string: skip to its closing quote.
			for i++; i < len(v) && v[i] != c; i++ {
				if c == '"' && v[i] == '\\' {
					i++
				}
			}
		}
	}
	s.depth = max(s.depth, 0) // a stray closing bracket
}
