package commands

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/perceptron/docker-perceptron/internal/fleet"
)

// The machine interface answers an offer for gpusHost, and refuses a
// request in another version in its own.
func TestHostAPI(t *testing.T) {
	spec, api, proc := gpusHost(t)
	dockerCLI, _, _, deps := gpusCLI(t, spec, api, proc)
	var out bytes.Buffer
	req := `{"Version":1,"Op":"gpus","Count":1}` + "\n"
	assert.NilError(t, serveHostAPI(t.Context(), dockerCLI, deps, strings.NewReader(req), &out))
	var o fleet.Offer
	assert.NilError(t, json.Unmarshal(out.Bytes(), &o))
	assert.Check(t, is.Equal(o.Version, fleet.Version))
	assert.Check(t, is.Len(o.GPUs, 4))
	assert.Check(t, is.Equal(o.Free, 0), "gpusHost has no free GPU")
	assert.Check(t, is.Equal(o.GPUs[1].UsedBy, "train (alice, running)"))

	out.Reset()
	assert.NilError(t, serveHostAPI(t.Context(), dockerCLI, deps, strings.NewReader(`{"Version":7,"Op":"gpus"}`+"\n"), &out))
	assert.Check(t, is.Contains(out.String(), `"Error":"machine interface 7 asked, this host speaks 1"`))
	out.Reset()
	assert.NilError(t, serveHostAPI(t.Context(), dockerCLI, deps, strings.NewReader(`{"Version":1,"Op":"reboot"}`+"\n"), &out))
	assert.Check(t, is.Contains(out.String(), `unknown request \"reboot\"`))
}
