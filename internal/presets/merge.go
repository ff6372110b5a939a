package presets

import (
	"strings"
)

// Merge returns base overridden by over, by these rules:
//
//   - a keyed option (env, label, ulimit, sysctl, published container port,
//     mount destination, ...) in over replaces base's values with the same key;
//     base's other keys stay;
//   - another repeatable option (dns, cap-add, device, ...) in over is added
//     to base's, but --network in over replaces all of base's networks;
//   - a single-valued option (shm-size, rm, gpus, ...) in over replaces base's;
//   - a few options in over make an option of base meaningless or
//     conflicting, and drop it: --ipc other than private/shareable drops
//     --shm-size, --restart drops --rm, --network host drops --publish.
//
// Settings of base come first in the result, in their order, then over's.
func Merge(base, over []Setting) []Setting {
	overKeys := map[string]bool{}
	overFlags := map[string]string{}
	for _, s := range over {
		name := Canonical(s.Flag)
		overFlags[name] = s.Value
		if k, ok := Key(name, s.Value); ok {
			overKeys[k] = true
		}
	}
	dropped := func(s Setting) bool {
		name := Canonical(s.Flag)
		if supersededBy(name, overFlags) {
			return true
		}
		if k, ok := Key(name, s.Value); ok {
			return overKeys[k]
		}
		_, set := overFlags[name]
		return set && (!Repeatable(name) || replacedWhole[name])
	}
	out := make([]Setting, 0, len(base)+len(over))
	for _, s := range base {
		if !dropped(s) {
			out = append(out, s)
		}
	}
	return append(out, over...)
}

// mergeChain returns Merge(...Merge(Merge(levels[0], levels[1]), levels[2])...,
// levels[n-1]), in time linear in the settings rather than in their number
// times the levels. Merge drops a setting of base for what over holds, never
// for base's other settings; so a setting of levels[i] is kept when no later
// level drops it, and what the later levels drop can be gathered walking
// back from the last.
func mergeChain(levels [][]Setting) []Setting {
	later := overSet{keys: map[string]bool{}, flags: map[string]bool{}, superseded: map[string]bool{}}
	kept := make([][]Setting, len(levels))
	total := 0
	for i := len(levels) - 1; i >= 0; i-- {
		for _, s := range levels[i] {
			if !later.drops(s) {
				kept[i] = append(kept[i], s)
			}
		}
		total += len(kept[i])
		later.add(levels[i])
	}
	out := make([]Setting, 0, total)
	for _, k := range kept {
		out = append(out, k...)
	}
	return out
}

// overSet is what the over lists of several merges drop together.
type overSet struct {
	keys       map[string]bool // keys of keyed options
	flags      map[string]bool // canonical option names
	superseded map[string]bool // option names made meaningless (see supersededBy)
}

// add gathers what Merge(_, over) drops.
func (o *overSet) add(over []Setting) {
	// supersededBy reads the last value of these in over.
	last := map[string]string{}
	for _, s := range over {
		name := Canonical(s.Flag)
		o.flags[name] = true
		if k, ok := Key(name, s.Value); ok {
			o.keys[k] = true
		}
		switch name {
		case "ipc", "restart", "network":
			last[name] = s.Value
		}
	}
	for _, name := range []string{"shm-size", "rm", "publish", "publish-all"} {
		if supersededBy(name, last) {
			o.superseded[name] = true
		}
	}
}

// drops reports whether one of the merges that o gathers drops s, by the
// rules of Merge's dropped.
func (o *overSet) drops(s Setting) bool {
	name := Canonical(s.Flag)
	if o.superseded[name] {
		return true
	}
	if k, ok := Key(name, s.Value); ok {
		return o.keys[k]
	}
	return o.flags[name] && (!Repeatable(name) || replacedWhole[name])
}

// replacedWhole are repeatable options that the user gives as a whole: a
// user's --network replaces all of a preset's networks.
var replacedWhole = map[string]bool{"network": true}

// supersededBy reports whether the options in over make base's option name
// conflict or meaningless.
func supersededBy(name string, over map[string]string) bool {
	switch name {
	case "shm-size":
		ipc, ok := over["ipc"]
		return ok && ipc != "" && ipc != "private" && ipc != "shareable"
	case "rm":
		restart, ok := over["restart"]
		return ok && restart != "" && restart != "no"
	case "publish", "publish-all":
		return over["network"] == "host"
	}
	return false
}

// aliases maps docker run's alias option names to the name used here.
var aliases = map[string]string{
	"net":       "network",
	"net-alias": "network-alias",
	"dns-opt":   "dns-option",
}

// Canonical returns the option name that name is an alias of, or name.
func Canonical(name string) string {
	if c, ok := aliases[name]; ok {
		return c
	}
	return name
}

// repeatable are the docker run options that may be given several times.
var repeatable = map[string]bool{
	"add-host": true, "annotation": true, "attach": true, "blkio-weight-device": true,
	"cap-add": true, "cap-drop": true, "device": true, "device-cgroup-rule": true,
	"device-read-bps": true, "device-read-iops": true, "device-write-bps": true, "device-write-iops": true,
	"dns": true, "dns-option": true, "dns-search": true, "env": true, "env-file": true,
	"expose": true, "group-add": true, "label": true, "label-file": true, "link": true,
	"link-local-ip": true, "log-opt": true, "mount": true, "network": true, "network-alias": true,
	"publish": true, "security-opt": true, "storage-opt": true, "sysctl": true, "tmpfs": true,
	"ulimit": true, "volume": true, "volumes-from": true,
}

// Repeatable reports whether the docker run option name may be given more
// than once (each value adds to the others).
func Repeatable(name string) bool {
	return repeatable[Canonical(name)]
}

// Key returns the key that a value of a keyed option sets, prefixed by the
// key's namespace ("env:CUDA_CACHE", "port:8000/tcp", "mount:/data"), so
// that -v, --mount and --tmpfs on one destination count as the same key.
func Key(name, value string) (string, bool) {
	switch Canonical(name) {
	case "env":
		return "env:" + beforeEq(value), true
	case "label":
		return "label:" + beforeEq(value), true
	case "annotation", "sysctl", "log-opt", "storage-opt", "ulimit":
		return Canonical(name) + ":" + beforeEq(value), true
	case "publish":
		return "port:" + containerPort(value), true
	case "volume":
		return "mount:" + volumeDestination(value), true
	case "tmpfs":
		dst, _, _ := strings.Cut(value, ":")
		return "mount:" + dst, true
	case "mount":
		return "mount:" + csvField(value, "target", "dst", "destination"), true
	}
	return "", false
}

func beforeEq(s string) string {
	k, _, _ := strings.Cut(s, "=")
	return k
}

// containerPort returns "PORT/PROTO" of a --publish value in any of its
// forms: "8000", "8000:8000", "127.0.0.1:8000:8000/udp", "[::1]:80:80",
// "published=8080,target=80,protocol=tcp".
func containerPort(value string) string {
	if strings.Contains(value, "=") {
		proto := csvField(value, "protocol")
		if proto == "" {
			proto = "tcp"
		}
		return csvField(value, "target") + "/" + proto
	}
	port, proto, ok := strings.Cut(value, "/")
	if !ok || proto == "" {
		proto = "tcp"
	}
	if i := strings.LastIndex(port, ":"); i >= 0 {
		port = port[i+1:]
	}
	return port + "/" + proto
}

// volumeDestination returns the container path of a -v value:
// "src:dst[:opts]" or an anonymous "dst".
func volumeDestination(value string) string {
	parts := strings.Split(value, ":")
	if len(parts) == 1 {
		return parts[0]
	}
	return parts[1]
}

// csvField returns the value of the first of keys found in a
// "k=v,k=v" option value.
func csvField(value string, keys ...string) string {
	for field := range strings.SplitSeq(value, ",") {
		k, v, _ := strings.Cut(field, "=")
		for _, want := range keys {
			if strings.TrimSpace(k) == want {
				return v
			}
		}
	}
	return ""
}

// DropKeys returns settings without the keyed values whose key is in keys
// (as returned by Key). The user's --env-file and --label-file set keys that
// only the files name; this drops a preset's values for them.
func DropKeys(settings []Setting, keys []string) []Setting {
	drop := map[string]bool{}
	for _, k := range keys {
		drop[k] = true
	}
	var out []Setting
	for _, s := range settings {
		if k, ok := Key(s.Flag, s.Value); ok && drop[k] {
			continue
		}
		out = append(out, s)
	}
	return out
}
