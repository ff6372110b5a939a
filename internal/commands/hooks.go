//go:build !fakenvml

package commands

// afterClaimHook runs between the GPU claim and the container's creation;
// test builds (fakenvml tag) can pause there.
func afterClaimHook() {}
