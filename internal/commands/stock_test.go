package commands

import (
	"testing"

	"gotest.tools/v3/assert"
)

// The command tree is built once, and holds run and create twice: the
// "container" ones, whose flags check values and keep them, are not the
// ones executed. Were they one command, presets' values would reach the
// container.
func TestStockTree(t *testing.T) {
	dockerCLI, _, _, _ := testCLI(t)
	st := newStock(dockerCLI)
	assert.Equal(t, st.tree(), st.tree())
	for _, name := range []string{"run", "create"} {
		checked, executed := st.find("container", name), st.find(name)
		assert.Assert(t, checked != nil && executed != nil, name)
		assert.Assert(t, checked != executed, "%s: one command checks and runs", name)
		assert.NilError(t, st.flags(name).Set("env", "FROM_A_PRESET=1"))
		assert.Check(t, !executed.Flags().Lookup("env").Changed, name)
		assert.Equal(t, executed.Flags().Lookup("env").Value.String(), "", name)
		assert.Check(t, st.flags(name).Lookup("env").Value.String() != "", name)
	}
}
