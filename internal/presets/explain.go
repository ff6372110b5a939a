package presets

import (
	"fmt"
	"strings"
	"unicode"
)

// Explain says in one line what a setting does and why a preset sets it.
// usage returns the stock option's help text, used for options without an
// explanation of their own.
func Explain(s Setting, usage func(flag string) string) string {
	name := Canonical(s.Flag)
	key, value, _ := strings.Cut(s.Value, "=")
	switch {
	case name == "shm-size":
		return "sizes /dev/shm, the shared memory that PyTorch DataLoader workers and NCCL use between processes; Docker's 64 MB default ends in \"bus error\""
	case name == "ipc" && s.Value == "host":
		return "shares the host's IPC namespace and /dev/shm with the container: unbounded, and visible to every other container doing the same; prefer --shm-size on shared hosts"
	case name == "ulimit" && key == "memlock" && value == "-1":
		return "no limit on locked memory, so CUDA can pin host buffers and RDMA/NCCL can register them"
	case name == "ulimit" && key == "stack":
		return fmt.Sprintf("a %s stack limit, the finite size NVIDIA recommends for its framework containers (the default 8 MiB is too small for some libraries)", byteSize(value))
	case name == "publish" && strings.HasPrefix(s.Value, "127.0.0.1:"):
		return fmt.Sprintf("publishes container port %s on a free port of 127.0.0.1 only%s, not to the network: from your machine, ssh -L PORT:127.0.0.1:PORT to the server; 'docker port CONTAINER' tells which port", containerPort(s.Value), portUse(containerPort(s.Value)))
	case name == "publish":
		return fmt.Sprintf("publishes container port %s on a free host port%s; 'docker port CONTAINER' tells which", containerPort(s.Value), portUse(containerPort(s.Value)))
	case name == "rm":
		return "removes the container when it exits"
	case name == "interactive":
		return "keeps stdin open, for a shell or a REPL"
	case name == "tty" && s.Value == "auto":
		return "allocates a terminal only when stdin is one, so the preset also works from scripts and CI"
	case name == "gpus" && strings.HasPrefix(s.Value, "auto"):
		return "gives the container free GPUs chosen by docker perceptron (see 'docker perceptron gpus')"
	case name == "env":
		return fmt.Sprintf("sets %s in the container's environment", key)
	}
	if usage != nil {
		return lowerFirst(usage(name))
	}
	return ""
}

// lowerFirst lowers the first letter of a help text, to continue a
// sentence, unless it begins an acronym: "Set umask" is "set umask", "GPU
// devices" stays.
func lowerFirst(s string) string {
	if len(s) > 1 && unicode.IsUpper(rune(s[1])) {
		return s
	}
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func portUse(port string) string {
	switch port {
	case "8000/tcp":
		return " (TensorBoard in the Perceptron tutorial)"
	case "6006/tcp":
		return " (TensorBoard's default)"
	case "8888/tcp":
		return " (Jupyter's default)"
	}
	return ""
}

// byteSize renders a byte count such as "67108864" as "64 MiB".
func byteSize(v string) string {
	var n int64
	if _, err := fmt.Sscan(v, &n); err != nil || n <= 0 {
		return v
	}
	for _, u := range []struct {
		unit string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.unit)
		}
	}
	return v + " bytes"
}
