package presets

import (
	"fmt"

	"github.com/docker/cli/opts"
)

// MergeUser merges the presets' settings with the user's own options, the
// user winning (see Merge): the keys that the user's --env-file and
// --label-file set drop the presets' values too, and "tty: auto" becomes
// --tty only when stdin is a terminal.
func MergeUser(fromPresets, user []Setting, stdinIsTerminal bool) ([]Setting, error) {
	fileKeys, err := userFileKeys(user)
	if err != nil {
		return nil, err
	}
	merged := Merge(DropKeys(fromPresets, fileKeys), user)
	return resolveTTY(merged, stdinIsTerminal), nil
}

// resolveTTY turns "tty: auto" into --tty when stdin is a terminal, and
// drops it otherwise, so interactive presets work from scripts and CI.
func resolveTTY(settings []Setting, stdinIsTerminal bool) []Setting {
	out := make([]Setting, 0, len(settings))
	for _, s := range settings {
		if s.Flag == "tty" && s.Value == "auto" {
			if !stdinIsTerminal {
				continue
			}
			s.Value = "true"
		}
		out = append(out, s)
	}
	return out
}

// userFileKeys returns the keys that the user's --env-file and --label-file
// set, as Key names them: they win over a preset's values.
func userFileKeys(user []Setting) ([]string, error) {
	var keys []string
	for _, s := range user {
		var ns string
		switch s.Flag {
		case "env-file":
			ns = "env"
		case "label-file":
			ns = "label"
		default:
			continue
		}
		kvs, err := opts.ReadKVStrings([]string{s.Value}, nil)
		if err != nil {
			return nil, fmt.Errorf("reading --%s: %w", s.Flag, err)
		}
		for _, kv := range kvs {
			k, _ := Key(ns, kv)
			keys = append(keys, k)
		}
	}
	return keys, nil
}
