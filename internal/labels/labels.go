// Package labels names every label docker perceptron puts on the containers
// it creates, as compose keeps its own in pkg/api/labels.go.
//
// They tell other users and later invocations who made a container and how.
// docker perceptron refuses them from its users and presets, but plain docker
// can set any label, so they are a description, never proof: the GPUs a
// container holds are read from its device requests (see internal/holders).
package labels

import "strings"

// Prefix starts every label of docker perceptron's.
const Prefix = "com.perceptron."

const (
	// User is who started the container.
	User = "com.perceptron.user"
	// GPUs is the comma-separated UUIDs of the GPUs given to the container
	// with --gpus auto.
	GPUs = "com.perceptron.gpus"
	// Claim is the token of the claim that chose the container's GPUs.
	Claim = "com.perceptron.claim"
	// Presets is the comma-separated presets the container was made with.
	Presets = "com.perceptron.presets"
	// Command is the command that made the container: "run" or "create".
	// A container that `run` created but never started (the run was killed)
	// holds its GPUs only for the lease time.
	Command = "com.perceptron.command"
)

// Own reports whether a label key is docker perceptron's: no user or preset
// may set it.
func Own(key string) bool { return strings.HasPrefix(key, Prefix) }
