package ledger

import (
	"os"
	"path/filepath"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func TestGrants(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	g := NewGrant("TOKEN1", []string{"GPU-a"}, "daemon-1", "run")
	assert.NilError(t, WriteGrant(dir, g))
	g.ContainerID = "c0ffee"
	assert.NilError(t, WriteGrant(dir, g)) // replaced once the container exists
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "grant-JUNK.json"), []byte("{"), 0o644))
	assert.NilError(t, os.WriteFile(filepath.Join(dir, "grant-OTHER.json"), []byte(`{"token":"NOTOTHER","uuids":["GPU-b"],"daemon":"d","pid":1}`), 0o644))

	got, err := Grants(dir)
	assert.NilError(t, err)
	assert.Assert(t, is.Len(got, 1))
	assert.Check(t, is.Equal(got[0].ContainerID, "c0ffee"))
	assert.Check(t, is.Equal(got[0].UID, os.Geteuid()))
	assert.Check(t, got[0].RunAlive())

	dead := got[0]
	dead.Start++ // another process with the same PID
	assert.Check(t, !dead.RunAlive())

	assert.NilError(t, RemoveGrant(dir, "TOKEN1"))
	assert.NilError(t, RemoveGrant(dir, "TOKEN1"))
	got, err = Grants(dir)
	assert.NilError(t, err)
	assert.Check(t, is.Len(got, 0))
}
