//go:build fakenvml

package commands

import (
	"os"
	"time"
)

// afterClaimHook pauses between the GPU claim and the container's creation
// for PERCEPTRON_TEST_PAUSE_AFTER_CLAIM (a duration), so that the end-to-end
// tests can kill an invocation there. Test builds only (fakenvml tag).
func afterClaimHook() {
	if d, err := time.ParseDuration(os.Getenv("PERCEPTRON_TEST_PAUSE_AFTER_CLAIM")); err == nil {
		time.Sleep(d)
	}
}
