//go:build linux

package preflight

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestMemlockHardLimit(t *testing.T) {
	limit, err := MemlockHardLimit()
	assert.NilError(t, err)
	assert.Assert(t, limit == -1 || limit > 0, "limit %d", limit)
}
