package presets

import _ "embed"

// Builtin is the YAML text of the built-in presets.
//
//go:embed builtin.yaml
var Builtin []byte
