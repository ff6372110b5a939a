package holders

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"gotest.tools/v3/assert"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/labels"
)

const (
	idA = "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7a8"
	idB = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

func TestContainerIDFromCgroup(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{name: "v2 systemd", content: "0::/system.slice/docker-" + idA + ".scope\n", want: idA},
		{name: "v2 cgroupfs", content: "0::/docker/" + idA + "\n", want: idA},
		{name: "v1 cgroupfs", content: "12:pids:/docker/" + idA + "\n11:memory:/docker/" + idA + "\n1:name=systemd:/docker/" + idA + "\n", want: idA},
		{name: "v1 systemd", content: "12:cpu,cpuacct:/system.slice/docker-" + idA + ".scope\n", want: idA},
		{name: "docker in docker", content: "0::/docker/" + idB + "/docker/" + idA + "\n", want: idA},
		{name: "kubepods", content: "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_5678.slice/cri-containerd-" + idA + ".scope\n", want: idA},
		{name: "kubepods v1", content: "4:memory:/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-000011112222/" + idA + "\n", want: idA},
		{name: "rootless", content: "0::/user.slice/user-1000.slice/user@1000.service/app.slice/docker-" + idA + ".scope\n", want: idA},
		{name: "host process", content: "0::/user.slice/user-1000.slice/session-3.scope\n", want: ""},
		{name: "init", content: "0::/init.scope\n", want: ""},
		{name: "65 hex digits is no id", content: "0::/docker/" + idA + "0\n", want: ""},
		{name: "upper case is no id", content: "0::/docker/" + strings.ToUpper(idA) + "\n", want: ""},
		{name: "empty", content: "", want: ""},
		{name: "garbage", content: "no colons here " + idA, want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, ContainerIDFromCgroup(tc.content), tc.want)
		})
	}
}

func inspectWith(env []string, labels map[string]string, user string, reqs ...container.DeviceRequest) container.InspectResponse {
	return container.InspectResponse{
		Config:     &container.Config{Env: env, Labels: labels, User: user},
		HostConfig: &container.HostConfig{Resources: container.Resources{DeviceRequests: reqs}},
	}
}

// onRuntime sets the container's runtime.
func onRuntime(runtime string, ctr container.InspectResponse) container.InspectResponse {
	ctr.HostConfig.Runtime = runtime
	return ctr
}

func TestReservationOf(t *testing.T) {
	gpuCaps := [][]string{{"gpu"}}
	tests := []struct {
		name string
		ctr  container.InspectResponse
		want Reservation
	}{
		{name: "nothing", ctr: inspectWith([]string{"PATH=/bin"}, nil, ""), want: Reservation{}},
		{name: "no config", ctr: container.InspectResponse{}, want: Reservation{}},
		{name: "--gpus all", ctr: inspectWith(nil, nil, "", container.DeviceRequest{Count: -1, Capabilities: gpuCaps}), want: Reservation{All: true}},
		{name: "--gpus 2", ctr: inspectWith(nil, nil, "", container.DeviceRequest{Count: 2, Capabilities: gpuCaps}), want: Reservation{First: 2}},
		{name: "--gpus device=1,3", ctr: inspectWith(nil, nil, "", container.DeviceRequest{DeviceIDs: []string{"1", "3"}, Capabilities: gpuCaps}), want: Reservation{GPUs: []string{"1", "3"}}},
		{name: "driver nvidia uuid", ctr: inspectWith(nil, nil, "", container.DeviceRequest{Driver: "nvidia", DeviceIDs: []string{"GPU-x"}}), want: Reservation{GPUs: []string{"GPU-x"}}},
		{name: "other capability", ctr: inspectWith(nil, nil, "", container.DeviceRequest{Count: -1, Capabilities: [][]string{{"tpu"}}}), want: Reservation{}},
		{name: "cdi", ctr: inspectWith(nil, nil, "", container.DeviceRequest{Driver: "cdi", DeviceIDs: []string{"nvidia.com/gpu=0", "vendor.com/x=1"}}), want: Reservation{GPUs: []string{"0"}}},
		{name: "cdi all", ctr: inspectWith(nil, nil, "", container.DeviceRequest{Driver: "cdi", DeviceIDs: []string{"nvidia.com/gpu=all"}}), want: Reservation{All: true}},
		{name: "env all", ctr: inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=all"}, nil, ""), want: Reservation{EnvAll: true}},
		{name: "env all on runc", ctr: onRuntime("runc", inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=all"}, nil, "")), want: Reservation{EnvAll: true, Runtime: "runc"}},
		{name: "env all on nvidia", ctr: onRuntime("nvidia", inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=all"}, nil, "")), want: Reservation{EnvAll: true, Runtime: "nvidia"}},
		{name: "env list", ctr: inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=0, GPU-x ,2:1"}, nil, ""), want: Reservation{EnvGPUs: []string{"0", "2:1", "GPU-x"}}},
		{name: "env none", ctr: onRuntime("nvidia", inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=none"}, nil, "")), want: Reservation{}},
		{name: "env void", ctr: inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=void"}, nil, ""), want: Reservation{}},
		{name: "env empty", ctr: inspectWith([]string{"NVIDIA_VISIBLE_DEVICES="}, nil, ""), want: Reservation{}},
		{name: "env last wins", ctr: inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_VISIBLE_DEVICES=1"}, nil, ""), want: Reservation{EnvGPUs: []string{"1"}}},
		{name: "runtime without env", ctr: onRuntime("nvidia", inspectWith(nil, nil, "")), want: Reservation{}},
		{
			name: "request overrides image env",
			ctr:  onRuntime("nvidia", inspectWith([]string{"NVIDIA_VISIBLE_DEVICES=all"}, nil, "", container.DeviceRequest{DeviceIDs: []string{"1"}, Capabilities: gpuCaps})),
			want: Reservation{GPUs: []string{"1"}},
		},
		{
			name: "request on runc",
			ctr:  onRuntime("runc", inspectWith(nil, nil, "", container.DeviceRequest{Count: -1, Capabilities: gpuCaps})),
			want: Reservation{All: true},
		},
		{name: "a label alone holds nothing", ctr: inspectWith(nil, map[string]string{labels.GPUs: "GPU-a,GPU-b"}, ""), want: Reservation{}},
		{name: "the device request, not the label", ctr: inspectWith(nil, map[string]string{labels.GPUs: "GPU-a"}, "", container.DeviceRequest{Driver: "nvidia", DeviceIDs: []string{"GPU-e"}}), want: Reservation{GPUs: []string{"GPU-e"}}},
		{name: "config user", ctr: inspectWith(nil, nil, "1000:1000"), want: Reservation{User: "1000:1000"}},
		{name: "label user wins", ctr: inspectWith(nil, map[string]string{labels.User: "alice"}, "root"), want: Reservation{User: "alice"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ReservationOf(tc.ctr)
			tc.want.Format = reservationFormat // every reservation read now is of this version
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

func TestReservationIndexes(t *testing.T) {
	inv := gpus.Inventory{Devices: []gpus.Device{{Index: 0, UUID: "GPU-a"}, {Index: 1, UUID: "GPU-b"}, {Index: 2, UUID: "GPU-c"}}}
	tests := []struct {
		name string
		r    Reservation
		want []int
	}{
		{name: "none", r: Reservation{}, want: nil},
		{name: "all", r: Reservation{All: true}, want: []int{0, 1, 2}},
		{name: "first 2", r: Reservation{First: 2}, want: []int{0, 1}},
		{name: "first 9", r: Reservation{First: 9}, want: []int{0, 1, 2}},
		{name: "uuid and index", r: Reservation{GPUs: []string{"GPU-C", "0"}}, want: []int{0, 2}},
		{name: "mig", r: Reservation{GPUs: []string{"1:0"}}, want: []int{1}},
		{name: "unknown", r: Reservation{GPUs: []string{"GPU-z", "7", "MIG-x"}}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, tc.r.Indexes(inv, "runc"), tc.want)
		})
	}
}

// A reservation holds the MIG devices it names (by UUID, or GPU:MIG as
// NVIDIA_VISIBLE_DEVICES and CDI's index names write them) and every one
// of a GPU it holds whole; naming a MIG device holds its GPU too, which is
// never given out whole while in MIG mode anyway.
func TestReservationSlices(t *testing.T) {
	inv := gpus.Inventory{Devices: []gpus.Device{
		{Index: 0, UUID: "GPU-a"},
		{Index: 1, UUID: "GPU-b", MIGEnabled: true, MIG: []gpus.MIGDevice{{Index: 0, UUID: "MIG-b0"}, {Index: 1, UUID: "MIG-b1"}}},
		{Index: 2, UUID: "GPU-c", MIGEnabled: true, MIG: []gpus.MIGDevice{{Index: 0, UUID: "MIG-c0"}, {Index: 2, UUID: "MIG-c2"}}},
	}}
	tests := []struct {
		name    string
		r       Reservation
		slices  []string
		indexes []int
	}{
		{name: "none", r: Reservation{}},
		{name: "by MIG UUID, any case", r: Reservation{GPUs: []string{"mig-b1"}}, slices: []string{"MIG-B1"}, indexes: []int{1}},
		{name: "GPU:MIG", r: Reservation{GPUs: []string{"2:2"}}, slices: []string{"MIG-C2"}, indexes: []int{2}},
		{name: "GPU:MIG of no MIG device", r: Reservation{GPUs: []string{"2:1"}}, indexes: []int{2}},
		{name: "the whole GPU by UUID", r: Reservation{GPUs: []string{"GPU-b"}}, slices: []string{"MIG-B0", "MIG-B1"}, indexes: []int{1}},
		{name: "the whole GPU by index", r: Reservation{GPUs: []string{"2"}}, slices: []string{"MIG-C0", "MIG-C2"}, indexes: []int{2}},
		{name: "every GPU", r: Reservation{All: true}, slices: []string{"MIG-B0", "MIG-B1", "MIG-C0", "MIG-C2"}, indexes: []int{0, 1, 2}},
		{name: "the first 2", r: Reservation{First: 2}, slices: []string{"MIG-B0", "MIG-B1"}, indexes: []int{0, 1}},
		{name: "NVIDIA_VISIBLE_DEVICES under runc holds nothing", r: Reservation{EnvGPUs: []string{"MIG-b0"}}},
		{name: "NVIDIA_VISIBLE_DEVICES under nvidia", r: Reservation{EnvGPUs: []string{"MIG-b0"}, Runtime: "nvidia"}, slices: []string{"MIG-B0"}, indexes: []int{1}},
		{name: "another host's MIG device", r: Reservation{GPUs: []string{"MIG-z"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, tc.r.Slices(inv, "runc"), tc.slices)
			assert.DeepEqual(t, tc.r.Indexes(inv, "runc"), tc.indexes)
		})
	}
}

// NVIDIA_VISIBLE_DEVICES holds GPUs only when NVIDIA's runtime runs the
// container; device requests hold them whatever the runtime.
func TestReservationRuntime(t *testing.T) {
	inv := gpus.Inventory{Devices: []gpus.Device{{Index: 0, UUID: "GPU-a"}, {Index: 1, UUID: "GPU-b"}, {Index: 2, UUID: "GPU-c"}}}
	ngc := Reservation{EnvAll: true} // an NGC image's env, without --gpus
	tests := []struct {
		name           string
		r              Reservation
		defaultRuntime string
		want           []int
	}{
		{name: "runc", r: withRuntime(ngc, "runc"), defaultRuntime: "runc", want: nil},
		{name: "runc on an nvidia default", r: withRuntime(ngc, "runc"), defaultRuntime: "nvidia", want: nil},
		{name: "nvidia", r: withRuntime(ngc, "nvidia"), defaultRuntime: "runc", want: []int{0, 1, 2}},
		{name: "nvidia-experimental", r: withRuntime(ngc, "nvidia-experimental"), defaultRuntime: "runc", want: []int{0, 1, 2}},
		{name: "NVIDIA upper case", r: withRuntime(ngc, "NVIDIA"), want: []int{0, 1, 2}},
		{name: "default runc", r: ngc, defaultRuntime: "runc", want: nil},
		{name: "default io.containerd.runc.v2", r: ngc, defaultRuntime: "io.containerd.runc.v2", want: nil},
		{name: "default nvidia", r: ngc, defaultRuntime: "nvidia", want: []int{0, 1, 2}},
		{name: "default unknown", r: ngc, defaultRuntime: "", want: []int{0, 1, 2}},
		{name: "env list on nvidia", r: Reservation{EnvGPUs: []string{"GPU-b"}, Runtime: "nvidia"}, want: []int{1}},
		{name: "env list on runc", r: Reservation{EnvGPUs: []string{"GPU-b"}, Runtime: "runc"}, want: nil},
		{name: "request on runc", r: Reservation{GPUs: []string{"2"}, Runtime: "runc"}, defaultRuntime: "runc", want: []int{2}},
		{name: "request and label on runc", r: Reservation{GPUs: []string{"0"}, EnvGPUs: []string{"1"}, Runtime: "runc"}, want: []int{0}},
		{name: "label and env on nvidia", r: Reservation{GPUs: []string{"0"}, EnvGPUs: []string{"1"}, Runtime: "nvidia"}, want: []int{0, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, tc.r.Indexes(inv, tc.defaultRuntime), tc.want)
			assert.Equal(t, tc.r.Holds(tc.defaultRuntime), tc.want != nil)
		})
	}
}

func withRuntime(r Reservation, runtime string) Reservation {
	r.Runtime = runtime
	return r
}

// A Reservation survives the file cache's JSON.
func TestReservationJSON(t *testing.T) {
	r := Reservation{User: "alice", GPUs: []string{"0"}, EnvAll: true, EnvGPUs: []string{"GPU-a"}, Runtime: "runc", Format: reservationFormat}
	b, err := json.Marshal(r)
	assert.NilError(t, err)
	var got Reservation
	assert.NilError(t, json.Unmarshal(b, &got))
	assert.DeepEqual(t, got, r)
}
