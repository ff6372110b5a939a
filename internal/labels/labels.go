// Package labels names every label docker perceptron puts on the containers
// it creates, as compose keeps its own in pkg/api/labels.go.
//
// They tell other users and later invocations who holds a container's GPUs.
// A user can set any label too, so they are a description, never proof: the
// GPUs a container holds are read from its device requests (see
// internal/holders).
package labels

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
)
