package presets

import (
	"math/rand/v2"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

func s(flag, value string) Setting { return Setting{Flag: flag, Value: value} }

func TestMerge(t *testing.T) {
	tests := []struct {
		name       string
		base, over []Setting
		want       []Setting
	}{
		{
			name: "single-valued option: the later wins",
			base: []Setting{s("shm-size", "1g"), s("rm", "true")},
			over: []Setting{s("shm-size", "2g")},
			want: []Setting{s("rm", "true"), s("shm-size", "2g")},
		},
		{
			name: "env per key",
			base: []Setting{s("env", "A=1"), s("env", "B=2")},
			over: []Setting{s("env", "A=9")},
			want: []Setting{s("env", "B=2"), s("env", "A=9")},
		},
		{
			name: "env without a value is the same key",
			base: []Setting{s("env", "HTTP_PROXY=http://x")},
			over: []Setting{s("env", "HTTP_PROXY")},
			want: []Setting{s("env", "HTTP_PROXY")},
		},
		{
			name: "ulimit per name",
			base: []Setting{s("ulimit", "memlock=-1"), s("ulimit", "stack=67108864")},
			over: []Setting{s("ulimit", "memlock=8388608")},
			want: []Setting{s("ulimit", "stack=67108864"), s("ulimit", "memlock=8388608")},
		},
		{
			name: "label per key, alias -l normalised by caller",
			base: []Setting{s("label", "team=a"), s("label", "x=1")},
			over: []Setting{s("label", "team=b")},
			want: []Setting{s("label", "x=1"), s("label", "team=b")},
		},
		{
			name: "published container port, any form",
			base: []Setting{s("publish", "8000"), s("publish", "6006"), s("publish", "9000/udp")},
			over: []Setting{s("publish", "127.0.0.1:18000:8000"), s("publish", "published=9001,target=9000,protocol=udp")},
			want: []Setting{s("publish", "6006"), s("publish", "127.0.0.1:18000:8000"), s("publish", "published=9001,target=9000,protocol=udp")},
		},
		{
			name: "udp and tcp of one port are different keys",
			base: []Setting{s("publish", "8000/udp")},
			over: []Setting{s("publish", "8000")},
			want: []Setting{s("publish", "8000/udp"), s("publish", "8000")},
		},
		{
			name: "mount destination across -v, --mount and --tmpfs",
			base: []Setting{s("volume", "/scratch:/data"), s("tmpfs", "/cache:size=1g"), s("volume", "/keep")},
			over: []Setting{s("mount", "type=bind,source=/mine,target=/data"), s("volume", "/x:/cache:ro")},
			want: []Setting{s("volume", "/keep"), s("mount", "type=bind,source=/mine,target=/data"), s("volume", "/x:/cache:ro")},
		},
		{
			name: "other repeatable options add up",
			base: []Setting{s("cap-add", "SYS_PTRACE"), s("dns", "1.1.1.1")},
			over: []Setting{s("cap-add", "NET_ADMIN")},
			want: []Setting{s("cap-add", "SYS_PTRACE"), s("dns", "1.1.1.1"), s("cap-add", "NET_ADMIN")},
		},
		{
			name: "aliases are the same option",
			base: []Setting{s("network", "bridge")},
			over: []Setting{s("net", "none")},
			want: []Setting{s("net", "none")},
		},
		{
			name: "--ipc host drops the preset's --shm-size, private keeps it",
			base: []Setting{s("shm-size", "1g"), s("ulimit", "memlock=-1")},
			over: []Setting{s("ipc", "host")},
			want: []Setting{s("ulimit", "memlock=-1"), s("ipc", "host")},
		},
		{
			name: "--ipc private keeps --shm-size",
			base: []Setting{s("shm-size", "1g")},
			over: []Setting{s("ipc", "private")},
			want: []Setting{s("shm-size", "1g"), s("ipc", "private")},
		},
		{
			name: "--ipc shareable keeps --shm-size",
			base: []Setting{s("shm-size", "1g")},
			over: []Setting{s("ipc", "shareable")},
			want: []Setting{s("shm-size", "1g"), s("ipc", "shareable")},
		},
		{
			name: "--ipc container:NAME drops --shm-size",
			base: []Setting{s("shm-size", "1g")},
			over: []Setting{s("ipc", "container:trainer")},
			want: []Setting{s("ipc", "container:trainer")},
		},
		{
			name: "--restart no keeps --rm",
			base: []Setting{s("rm", "true")},
			over: []Setting{s("restart", "no")},
			want: []Setting{s("rm", "true"), s("restart", "no")},
		},
		{
			name: "--restart drops --rm",
			base: []Setting{s("rm", "true")},
			over: []Setting{s("restart", "unless-stopped")},
			want: []Setting{s("restart", "unless-stopped")},
		},
		{
			name: "--network host drops published ports",
			base: []Setting{s("publish", "8000")},
			over: []Setting{s("network", "host")},
			want: []Setting{s("network", "host")},
		},
		{
			name: "a user's --gpus replaces the preset's",
			base: []Setting{s("gpus", "auto:2")},
			over: []Setting{s("gpus", "device=3")},
			want: []Setting{s("gpus", "device=3")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, Merge(tc.base, tc.over), tc.want)
		})
	}
}

// mergeChain is Merge folded over the levels of an extends chain.
func TestMergeChain(t *testing.T) {
	// Settings that every rule of Merge applies to.
	pool := []Setting{
		s("shm-size", "1g"), s("shm-size", "2g"), s("rm", "true"), s("rm", "false"),
		s("ipc", "host"), s("ipc", "private"), s("ipc", "shareable"), s("ipc", ""),
		s("restart", "no"), s("restart", "always"), s("restart", ""),
		s("network", "host"), s("net", "bridge"), s("network", "none"),
		s("publish", "8000"), s("publish", "127.0.0.1:18000:8000"), s("publish", "6006/udp"), s("publish-all", "true"),
		s("env", "A=1"), s("env", "A=2"), s("env", "B"), s("label", "A=1"),
		s("ulimit", "memlock=-1"), s("ulimit", "memlock=0"), s("ulimit", "stack=1"),
		s("volume", "/x:/data"), s("mount", "type=bind,src=/y,dst=/data"), s("tmpfs", "/data"),
		s("cap-add", "SYS_PTRACE"), s("dns", "1.1.1.1"), s("gpus", "all"), s("gpus", "auto:2"),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		levels := make([][]Setting, rng.IntN(6))
		for i := range levels {
			for range rng.IntN(5) {
				levels[i] = append(levels[i], pool[rng.IntN(len(pool))])
			}
		}
		var want []Setting
		for _, l := range levels {
			want = Merge(want, l)
		}
		got := mergeChain(levels)
		if len(want) == 0 {
			assert.Check(t, is.Len(got, 0), "%v", levels)
			continue
		}
		assert.Check(t, is.DeepEqual(got, want), "%v", levels)
	}
}

func TestDropKeys(t *testing.T) {
	got := DropKeys([]Setting{s("env", "A=1"), s("env", "B=2"), s("label", "A=1"), s("shm-size", "1g")}, []string{"env:A"})
	assert.DeepEqual(t, got, []Setting{s("env", "B=2"), s("label", "A=1"), s("shm-size", "1g")})
}

func TestKey(t *testing.T) {
	tests := []struct {
		flag, value, want string
		keyed             bool
	}{
		{"env", "A=1", "env:A", true},
		{"publish", "[::1]:80:80", "port:80/tcp", true},
		{"publish", "8000-8010:8000-8010/udp", "port:8000-8010/udp", true},
		{"volume", "/data", "mount:/data", true},
		{"mount", "type=volume,src=v,dst=/v", "mount:/v", true},
		{"sysctl", "net.core.somaxconn=1024", "sysctl:net.core.somaxconn", true},
		{"shm-size", "1g", "", false},
		{"cap-add", "ALL", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.flag+" "+tc.value, func(t *testing.T) {
			got, keyed := Key(tc.flag, tc.value)
			assert.Check(t, is.Equal(keyed, tc.keyed))
			assert.Check(t, is.Equal(got, tc.want))
		})
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"docker", "run", "--shm-size", "1g", "img"}, "docker run --shm-size 1g img"},
		{[]string{"-e", "A=x y"}, "-e 'A=x y'"},
		{[]string{"sh", "-c", "echo 'hi' $HOME"}, `sh -c 'echo '\''hi'\'' $HOME'`},
		{[]string{""}, "''"},
		{[]string{"--ulimit", "memlock=-1"}, "--ulimit memlock=-1"},
	}
	for _, tc := range tests {
		assert.Check(t, is.Equal(CommandLine(tc.args...), tc.want))
	}
}

func TestArgs(t *testing.T) {
	got := Args([]Setting{s("rm", "true"), s("sig-proxy", "false"), s("shm-size", "1g"), s("env", "A=1")})
	assert.DeepEqual(t, got, []string{"--rm", "--sig-proxy=false", "--shm-size", "1g", "--env", "A=1"})
}
