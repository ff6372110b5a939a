package presets

import (
	"regexp"
	"strings"
)

// Args renders settings as docker run arguments, long options only:
// "--shm-size", "1g"; a boolean option set to true is the bare option
// ("--rm"), one set to false is "--rm=false".
func Args(settings []Setting) []string {
	var args []string
	for _, s := range settings {
		switch {
		case IsBool(s.Flag) && s.Value == "true":
			args = append(args, "--"+s.Flag)
		case IsBool(s.Flag):
			args = append(args, "--"+s.Flag+"="+s.Value)
		default:
			args = append(args, "--"+s.Flag, s.Value)
		}
	}
	return args
}

// bools are docker run's boolean options (they take no separate value).
var bools = map[string]bool{
	"detach": true, "disable-content-trust": true, "help": true, "init": true,
	"interactive": true, "no-healthcheck": true, "oom-kill-disable": true,
	"privileged": true, "publish-all": true, "quiet": true, "read-only": true,
	"rm": true, "sig-proxy": true, "tty": true, "use-api-socket": true,
}

// IsBool reports whether the docker run option name is a boolean.
func IsBool(name string) bool { return bools[name] }

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// Quote quotes s for a POSIX shell, leaving it bare when that is safe.
func Quote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// CommandLine renders a command as one line that a POSIX shell reads back
// as the same arguments.
func CommandLine(args ...string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = Quote(a)
	}
	return strings.Join(quoted, " ")
}
