package preflight

import (
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

// A real requirement string, from nvidia/cuda:12.8.1-base-ubuntu24.04.
const requireCUDA128 = "cuda>=12.8 brand=unknown,driver>=470,driver<471 brand=grid,driver>=470,driver<471 " +
	"brand=tesla,driver>=470,driver<471 brand=nvidia,driver>=470,driver<471 brand=quadro,driver>=470,driver<471 " +
	"brand=tesla,driver>=535,driver<536 brand=nvidia,driver>=535,driver<536"

func TestEvalRequirement(t *testing.T) {
	testCases := []struct {
		name string
		req  string
		host hostProps
		want truth
	}{
		{name: "cuda newer", req: "cuda>=12.8", host: hostProps{cuda: "13.0"}, want: isTrue},
		{name: "cuda equal", req: "cuda>=12.8", host: hostProps{cuda: "12.8"}, want: isTrue},
		{name: "cuda older", req: "cuda>=12.8", host: hostProps{cuda: "12.4"}, want: isFalse},
		{name: "numeric not lexical", req: "cuda>=12.9", host: hostProps{cuda: "12.10"}, want: isTrue},
		{name: "cuda unknown", req: "cuda>=12.8", host: hostProps{}, want: isUnknown},
		{
			name: "compat alternative on tesla 535",
			req:  requireCUDA128, host: hostProps{cuda: "12.2", driver: "535.104.05", brand: "tesla"},
			want: isTrue,
		},
		{
			name: "compat alternative needs the brand",
			req:  requireCUDA128, host: hostProps{cuda: "12.2", driver: "535.104.05", brand: "geforce"},
			want: isFalse,
		},
		{
			name: "compat alternative with unknown brand",
			req:  requireCUDA128, host: hostProps{cuda: "12.2", driver: "535.104.05"},
			want: isUnknown,
		},
		{
			name: "no alternative for a 550 driver",
			req:  requireCUDA128, host: hostProps{cuda: "12.4", driver: "550.54.15", brand: "tesla"},
			want: isFalse,
		},
		{
			name: "unknown driver but cuda false and brands known wrong",
			req:  "cuda>=12.8 brand=tesla,driver>=470,driver<471", host: hostProps{cuda: "12.4", brand: "geforce"},
			want: isFalse,
		},
		{name: "brand is case-insensitive", req: "brand=Tesla", host: hostProps{brand: "tesla"}, want: isTrue},
		{name: "unsupported property ignored", req: "foo>=1 cuda>=12.0", host: hostProps{cuda: "12.0"}, want: isTrue},
		{name: "only unsupported properties", req: "foo>=1", host: hostProps{cuda: "11.0"}, want: isTrue},
		{name: "empty", req: "  ", host: hostProps{cuda: "11.0"}, want: isTrue},
		{name: "not equal", req: "driver!=470", host: hostProps{driver: "470"}, want: isFalse},
		{name: "less than", req: "driver<471", host: hostProps{driver: "470.256.02"}, want: isTrue},
		{name: "greater than", req: "cuda>12.0", host: hostProps{cuda: "12.0"}, want: isFalse},
		{name: "equal", req: "cuda=12.0", host: hostProps{cuda: "12.0.0"}, want: isTrue},
		{name: "arch is never known", req: "arch>=8.0", host: hostProps{cuda: "13.0"}, want: isUnknown},
		{name: "bad version", req: "cuda>=twelve", host: hostProps{cuda: "12.0"}, want: isUnknown},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, evalRequirement(tc.req, tc.host), tc.want)
		})
	}
}

func TestEvalRequirementsAreANDed(t *testing.T) {
	host := hostProps{cuda: "12.4", driver: "550.54.15", brand: "nvidia"}
	assert.Equal(t, evalRequirements([]string{"cuda>=12.0", "driver>=550"}, host), isTrue)
	assert.Equal(t, evalRequirements([]string{"cuda>=12.0", "driver>=560"}, host), isFalse)
	assert.Equal(t, evalRequirements(nil, host), isTrue)
}

func TestCUDARequirements(t *testing.T) {
	testCases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{name: "none", env: map[string]string{"PATH": "/usr/bin"}},
		{name: "require cuda", env: map[string]string{"NVIDIA_REQUIRE_CUDA": "cuda>=12.8", "CUDA_VERSION": "12.8.1"}, want: []string{"cuda>=12.8"}},
		{name: "legacy CUDA_VERSION", env: map[string]string{"CUDA_VERSION": "12.4.1"}, want: []string{"cuda>=12.4"}},
		{name: "legacy with v prefix", env: map[string]string{"CUDA_VERSION": "v11.8"}, want: []string{"cuda>=11.8"}},
		{name: "legacy unparsable", env: map[string]string{"CUDA_VERSION": "latest"}},
		{name: "jetpack ignored", env: map[string]string{"NVIDIA_REQUIRE_JETPACK": "csv-mounts=all"}},
		{
			name: "several sorted, legacy added",
			env:  map[string]string{"NVIDIA_REQUIRE_ZZ": "driver>=500", "NVIDIA_REQUIRE_ARCH": "arch>=7.0", "CUDA_VERSION": "12.1.0"},
			want: []string{"arch>=7.0", "driver>=500", "cuda>=12.1"},
		},
		{name: "disabled", env: map[string]string{"NVIDIA_REQUIRE_CUDA": "cuda>=12.8", "NVIDIA_DISABLE_REQUIRE": "1"}},
		{name: "disabled true", env: map[string]string{"CUDA_VERSION": "12.8.0", "NVIDIA_DISABLE_REQUIRE": "true"}},
		{name: "disable false", env: map[string]string{"NVIDIA_REQUIRE_CUDA": "cuda>=12.8", "NVIDIA_DISABLE_REQUIRE": "false"}, want: []string{"cuda>=12.8"}},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, CUDARequirements(tc.env), tc.want)
		})
	}
}

func TestCheckImageCUDA(t *testing.T) {
	image := func(env ...string) *ImageInfo { return &ImageInfo{Env: env} }
	testCases := []struct {
		name      string
		in        Input
		wantLevel Level // OK also when there is no finding
		wantIn    []string
	}{
		{
			name: "no gpu requested",
			in:   Input{Image: image("NVIDIA_REQUIRE_CUDA=cuda>=13.0"), HostCUDA: "12.4"},
		},
		{
			name: "image not local",
			in:   Input{GPURequested: true, HostCUDA: "12.4"},
		},
		{
			name: "host cuda unknown",
			in:   Input{GPURequested: true, Image: image("NVIDIA_REQUIRE_CUDA=cuda>=13.0")},
		},
		{
			name: "satisfied",
			in:   Input{GPUChoice: true, Image: image("NVIDIA_REQUIRE_CUDA=" + requireCUDA128), HostCUDA: "13.0", HostDriver: "580.95.05"},
		},
		{
			name:      "too new",
			in:        Input{GPURequested: true, Image: image("NVIDIA_REQUIRE_CUDA="+requireCUDA128, "CUDA_VERSION=12.8.1"), HostCUDA: "12.4", HostDriver: "550.54.15", HostBrand: "nvidia"},
			wantLevel: Fail,
			wantIn:    []string{"requires CUDA 12.8 (NVIDIA_REQUIRE_CUDA)", "driver 550.54.15 supports CUDA 12.4", "unsatisfied condition: cuda>=12.8", "570 or newer", "CUDA 12.4 or older"},
		},
		{
			name:      "legacy too new",
			in:        Input{GPURequested: true, Image: image("CUDA_VERSION=13.0.1"), HostCUDA: "12.8"},
			wantLevel: Fail,
			wantIn:    []string{"requires CUDA 13.0 (CUDA_VERSION=13.0.1)", "the host driver supports CUDA 12.8", "580 or newer"},
		},
		{
			name: "run env disables",
			in:   Input{GPURequested: true, Env: []string{"NVIDIA_DISABLE_REQUIRE=1"}, Image: image("CUDA_VERSION=13.0.1"), HostCUDA: "12.8"},
		},
		{
			name:      "run env overrides image requirement",
			in:        Input{GPURequested: true, Env: []string{"NVIDIA_REQUIRE_CUDA=cuda>=13.1"}, Image: image("NVIDIA_REQUIRE_CUDA=cuda>=12.0"), HostCUDA: "13.0"},
			wantLevel: Fail,
			wantIn:    []string{"requires CUDA 13.1", "install a driver that supports CUDA 13.1,"},
		},
		{
			name:      "compat alternative with unknown brand",
			in:        Input{GPURequested: true, Image: image("NVIDIA_REQUIRE_CUDA=" + requireCUDA128), HostCUDA: "12.2", HostDriver: "535.104.05"},
			wantLevel: Warn,
			wantIn:    []string{"cannot tell", "535.104.05"},
		},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkImageCUDA(tc.in)
			assert.Equal(t, Worst(got), tc.wantLevel)
			if tc.wantLevel == OK {
				return
			}
			assert.Assert(t, is.Len(got, 1))
			text := got[0].Message + " | " + got[0].Fix
			for _, s := range tc.wantIn {
				assert.Assert(t, is.Contains(text, s))
			}
			assert.Equal(t, got[0].Check, "image-cuda")
		})
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"12.4", "12.4.0", 0}, {"580.95.05", "580.95.5", 0}, {"12.10", "12.9", 1}, {"v11", "12", -1},
	} {
		got, ok := compareVersions(tc.a, tc.b)
		assert.Assert(t, ok, "%s vs %s", tc.a, tc.b)
		assert.Equal(t, got, tc.want, "%s vs %s", tc.a, tc.b)
	}
	_, ok := compareVersions("12.x", "12")
	assert.Assert(t, !ok)
	assert.Assert(t, strings.HasPrefix(requiredCUDA([]string{"cuda>=12.2 cuda>=12.10"}), "12.10"))
}

func TestBrandName(t *testing.T) {
	assert.Equal(t, BrandName(2), "tesla")        // nvml.BRAND_TESLA
	assert.Equal(t, BrandName(14), "nvidia")      // nvml.BRAND_NVIDIA
	assert.Equal(t, BrandName(11), "cloudgaming") // nvml.BRAND_NVIDIA_CLOUD_GAMING
	assert.Equal(t, BrandName(16), "titanrtx")
	assert.Equal(t, BrandName(17), "")
	assert.Equal(t, BrandName(-1), "")
}
