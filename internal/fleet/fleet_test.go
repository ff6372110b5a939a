package fleet

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func offer(free, total, score, waiters int, image bool) Offer {
	o := Offer{Version: Version, Free: free, Score: score, Waiters: waiters, ImagePresent: image}
	o.GPUs = make([]GPU, total)
	return o
}

func TestRank(t *testing.T) {
	h := func(name string) Host { return Host{Context: name} }
	tests := []struct {
		name    string
		answers []Answer
		count   int
		want    []string
		refused map[string]string
	}{
		{
			name: "enough free GPUs; the image there wins",
			answers: []Answer{
				{Host: h("a"), Offer: offer(4, 4, 10, 0, false)},
				{Host: h("b"), Offer: offer(2, 4, 10, 0, true)},
				{Host: h("c"), Offer: offer(1, 4, 10, 0, true)},
			},
			count: 2, want: []string{"b", "a"}, refused: map[string]string{"c": "1 of 4 GPUs free"},
		},
		{
			name: "fewer waiters, then better links, then more left free, then the name",
			answers: []Answer{
				{Host: h("d"), Offer: offer(2, 4, 5, 0, false)},
				{Host: h("c"), Offer: offer(4, 4, 5, 0, false)},
				{Host: h("b"), Offer: offer(2, 4, 9, 0, false)},
				{Host: h("a"), Offer: offer(4, 8, 9, 1, false)},
				{Host: h("e"), Offer: offer(2, 4, 5, 0, false)},
			},
			count: 2, want: []string{"b", "c", "d", "e", "a"}, refused: map[string]string{},
		},
		{
			name: "unreachable, broken and refusing hosts say why",
			answers: []Answer{
				{Host: h("down"), Err: errors.New("down did not answer: the connection closed")},
				{Host: h("nodriver"), Offer: Offer{Version: Version, Error: "NVIDIA driver not available"}},
				{Host: h("old"), Offer: Offer{Version: Version, Free: 4, GPUs: make([]GPU, 4), ImageRefused: "needs driver 590"}},
				{Host: h("ok"), Offer: offer(4, 4, 0, 0, false)},
			},
			count: 1, want: []string{"ok"},
			refused: map[string]string{"down": "down did not answer: the connection closed", "nodriver": "NVIDIA driver not available", "old": "needs driver 590"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ranked, refused := Rank(tc.answers, tc.count)
			var got []string
			for _, a := range ranked {
				got = append(got, a.Host.Context)
			}
			assert.Check(t, is.DeepEqual(got, tc.want))
			assert.Check(t, is.DeepEqual(refused, tc.refused))
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fleet.yaml")
	_, err := Load(path)
	assert.Check(t, errors.Is(err, ErrNoFleet))
	assert.NilError(t, os.WriteFile(path, []byte("hosts:\n  - context: gpu1\n  - context: gpu2\n    command: [ssh, -J, jump, gpu2, docker, perceptron, host-api]\n"), 0o644))
	hosts, err := Load(path)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(hosts, []Host{{Context: "gpu1"}, {Context: "gpu2", Command: []string{"ssh", "-J", "jump", "gpu2", "docker", "perceptron", "host-api"}}}))

	for text, want := range map[string]string{
		"hosts: []\n":                              "lists no hosts",
		"hosts:\n  - command: [x]\n":               "host 1 has no context",
		"hosts:\n  - context: a\n  - context: a\n": "context a is listed twice",
		"hosts:\n  - context: a\n    cmd: [x]\n":   "field cmd not found",
	} {
		assert.NilError(t, os.WriteFile(path, []byte(text), 0o644))
		_, err := Load(path)
		assert.Check(t, is.ErrorContains(err, want), text)
	}

	named, err := FromContexts("gpu2, gpu3,gpu2", hosts)
	assert.NilError(t, err)
	assert.Check(t, is.DeepEqual(named, []Host{{Context: "gpu2", Command: hosts[1].Command}, {Context: "gpu3"}}))
	_, err = FromContexts(" , ", nil)
	assert.Check(t, is.ErrorContains(err, "invalid --context"))
}

func TestReach(t *testing.T) {
	for _, tc := range []struct {
		host Host
		via  string
		cmd  string
		err  string
	}{
		{host: Host{Context: "a", Endpoint: "ssh://me@gpu3:2222"}, via: ViaSSH, cmd: "ssh -o BatchMode=yes -l me -p 2222 -- gpu3 docker perceptron host-api"},
		{host: Host{Context: "b", Endpoint: "ssh://gpu4"}, via: ViaSSH, cmd: "ssh -o BatchMode=yes -- gpu4 docker perceptron host-api"},
		{host: Host{Context: "c", Endpoint: "unix:///var/run/docker.sock"}, via: ViaLocal},
		{host: Host{Context: "d", Endpoint: "tcp://gpu5:2376"}, err: "give its command in the fleet file"},
		{host: Host{Context: "e", Endpoint: "tcp://gpu5:2376", Command: []string{"ssh", "gpu5", "docker", "perceptron", "host-api"}}, via: ViaCommand, cmd: "ssh gpu5 docker perceptron host-api"},
	} {
		via, cmd, err := Reach(tc.host)
		if tc.err != "" {
			assert.Check(t, is.ErrorContains(err, tc.err))
			continue
		}
		assert.NilError(t, err)
		assert.Check(t, is.Equal(via, tc.via))
		assert.Check(t, is.Equal(strings.Join(cmd, " "), tc.cmd))
	}
}

func TestVersionError(t *testing.T) {
	assert.Check(t, is.ErrorContains(&VersionError{Host: "gpu2", Got: 2, Want: 1}, "gpu2 runs a newer docker perceptron (machine interface 2, this one speaks 1)"))
	assert.Check(t, is.ErrorContains(&VersionError{Host: "gpu2", Got: 0, Want: 1}, "older"))
}
