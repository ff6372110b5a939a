package e2e

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// psLines runs docker perceptron ps with a template of ID, name, GPUs, user
// and status, and returns its lines by full container ID.
func psLines(t *testing.T, e *Env, args ...string) map[string]string {
	t.Helper()
	args = append([]string{"perceptron", "ps", "--no-trunc", "--format", "{{.ID}}|{{.Names}}|{{.GPUs}}|{{.User}}|{{.State}}"}, args...)
	out := e.MustDocker(args...)
	lines := map[string]string{}
	for line := range strings.Lines(out) {
		id, rest, _ := strings.Cut(strings.TrimSpace(line), "|")
		lines[id] = rest
	}
	return lines
}

// TestPs: ps lists the user's running containers, with the GPUs they
// reserve as NVML indexes; --all every user's, in every state; --format
// json has docker ps's keys and ours.
func TestPs(t *testing.T) {
	forEachCLI(t, func(t *testing.T, e *Env) {
		spec := sampleNVML(4)
		gpusEnv(t, e, spec)
		mine := e.MustDocker("perceptron", "run", "-d", "--gpus", "auto", testImage, "sleep", "600")
		mine = mine[strings.LastIndexByte(mine, '\n')+1:]
		e.MustDocker("perceptron", "run", testImage, "true")
		stopped := e.MustDocker("ps", "-lq", "--no-trunc")
		plain := e.MustDocker("run", "-d", "--gpus", `"device=`+spec.GPUs[3].UUID+`"`, testImage, "sleep", "600")
		user := e.Inspect(mine, `{{index .Config.Labels "com.perceptron.user"}}`)
		uuid := e.Inspect(mine, `{{index .Config.Labels "com.perceptron.gpus"}}`)
		idx := slices.IndexFunc(spec.GPUs, func(g FakeGPU) bool { return g.UUID == uuid })
		if user == "" || idx < 0 {
			t.Fatalf("container %s: user %q, GPU %q", mine, user, uuid)
		}
		if e.Inspect(stopped, `{{index .Config.Labels "com.perceptron.user"}}`) != user {
			t.Fatalf("the stopped container %s is not %s's", stopped, user)
		}

		wantMine := gpusContainerName(e, mine) + "|" + strconv.Itoa(idx) + "|" + user + "|running"
		wantPlain := gpusContainerName(e, plain) + "|3||running"
		wantStopped := gpusContainerName(e, stopped) + "||" + user + "|exited"

		got := psLines(t, e)
		if got[mine] != wantMine {
			t.Errorf("ps: %s is %q, want %q\n%v", mine, got[mine], wantMine, got)
		}
		if _, ok := got[plain]; ok {
			t.Errorf("ps shows the plain docker run container %s, which is no one's:\n%v", plain, got)
		}
		if _, ok := got[stopped]; ok {
			t.Errorf("ps shows the exited container %s without --all:\n%v", stopped, got)
		}

		got = psLines(t, e, "--all")
		for id, want := range map[string]string{mine: wantMine, plain: wantPlain, stopped: wantStopped} {
			if got[id] != want {
				t.Errorf("ps --all: %s is %q, want %q\n%v", id, got[id], want, got)
			}
		}

		out := e.MustDocker("perceptron", "ps", "-a", "--format", "json")
		var ids []string
		for line := range strings.Lines(out) {
			var obj map[string]string
			if err := json.Unmarshal([]byte(line), &obj); err != nil {
				t.Fatalf("line %q is not JSON: %v", line, err)
			}
			for _, k := range []string{"ID", "Names", "Image", "Command", "GPUs", "User", "State", "Status", "RunningFor", "CreatedAt", "Labels"} {
				if _, ok := obj[k]; !ok {
					t.Errorf("ps --format json lacks %q: %s", k, line)
				}
			}
			ids = append(ids, obj["ID"])
			if obj["ID"] == mine[:12] && (obj["GPUs"] != strconv.Itoa(idx) || obj["User"] != user || !strings.HasPrefix(obj["Status"], "Up ")) {
				t.Errorf("ps --format json: %s", line)
			}
		}
		for _, id := range []string{mine, plain, stopped} {
			if !slices.Contains(ids, id[:12]) {
				t.Errorf("ps -a --format json lacks %s:\n%s", id, out)
			}
		}

		if q := e.MustDocker("perceptron", "ps", "-q"); !slices.Contains(strings.Fields(q), mine[:12]) || strings.Contains(q, plain[:12]) {
			t.Errorf("ps -q:\n%s", q)
		}
	})
}
