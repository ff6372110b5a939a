package ngc

import (
	"testing"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
)

const testReleases = `# a comment
release	cuda	min_driver	compat_drivers	source
23.10	12.2.2	535.104.05	470.57,525.85	https://docs.nvidia.com/a
24.05	12.4.1	550.54.15	470.57,525.85,535.86,545.23	https://docs.nvidia.com/b https://docs.nvidia.com/c
25.01	12.8.0	570.86.10	-	https://docs.nvidia.com/d
`

const testImages = `framework	repository	tag	first	last	source
pytorch	nvcr.io/nvidia/pytorch	{release}-py3	23.10	-	https://docs.nvidia.com/p
tensorflow	nvcr.io/nvidia/tensorflow	{release}-tf2-py3	23.10	24.05	https://docs.nvidia.com/t
`

func testTable(t *testing.T) Table {
	t.Helper()
	tab, err := Parse([]byte(testReleases), []byte(testImages))
	assert.NilError(t, err)
	return tab
}

func v(s string) Version {
	x, err := ParseVersion(s)
	if err != nil {
		panic(err)
	}
	return x
}

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"550.54.15", "550.54.15", 0}, {"545", "545.0.0", 0}, {"535.104.05", "535.86", 1},
		{"12.10", "12.9", 1}, {"470.57.02", "525.85", -1},
	} {
		assert.Check(t, is.Equal(v(tc.a).Compare(v(tc.b)), tc.want), "%s vs %s", tc.a, tc.b)
	}
	for _, bad := range []string{"", "abc", "550.", "1.2.3.4.5", "-1", "5500000000"} {
		_, err := ParseVersion(bad)
		assert.Check(t, err != nil, "%q", bad)
	}
	assert.Check(t, is.Equal(v("535.129.03").String(), "535.129.03"), "printed as written")
}

func TestParseErrors(t *testing.T) {
	head := "release\tcuda\tmin_driver\tcompat_drivers\tsource\n"
	for _, tc := range []struct{ releases, images, want string }{
		{"nope\n", testImages, `releases.tsv:1: the header must be`},
		{head + "24.05\t12.4.1\t550.54.15\t-\n", testImages, "4 fields, want 5"},
		{head + "2024.05\t12.4.1\t550.54.15\t-\thttps://x\n", testImages, `invalid release "2024.05"`},
		{head + "24.05\t12.4.1\t550.54.15\t-\thttps://x\n24.01\t12.3\t545.23\t-\thttps://x\n", testImages, "release 24.01 after 24.05"},
		{head + "24.05\t12.4.1\tnew\t-\thttps://x\n", testImages, "min_driver"},
		{head + "24.05\t12.4.1\t550.54.15\t-\thttp://x\n", testImages, "invalid source"},
		{testReleases, "framework\trepository\ttag\tfirst\tlast\tsource\npytorch\tnvcr.io/nvidia/pytorch\tlatest\t23.10\t-\thttps://x\n", "{release}"},
		{testReleases, "framework\trepository\ttag\tfirst\tlast\tsource\npytorch\tnvcr.io/nvidia/pytorch\t{release}-py3\t22.01\t-\thttps://x\n", "first and last"},
	} {
		_, err := Parse([]byte(tc.releases), []byte(tc.images))
		assert.Check(t, is.ErrorContains(err, tc.want))
	}
}

func TestReleaseFit(t *testing.T) {
	tab := testTable(t)
	r2405, _ := tab.Release("24.05")
	r2501, _ := tab.Release("25.01")
	for _, tc := range []struct {
		name string
		rel  Release
		host Host
		want Fit
	}{
		{"newer driver", r2405, Host{Driver: v("580.95.05"), DataCenter: TriNo}, Native},
		{"exactly the minimum", r2405, Host{Driver: v("550.54.15"), DataCenter: TriNo}, Native},
		{"older, data centre, listed branch", r2405, Host{Driver: v("535.129.03"), DataCenter: TriYes}, ForwardCompat},
		{"older, data centre, too old in its branch", r2405, Host{Driver: v("535.54"), DataCenter: TriYes}, No},
		{"older, data centre, branch not listed", r2405, Host{Driver: v("530.30"), DataCenter: TriYes}, No},
		{"older, GeForce", r2405, Host{Driver: v("535.129.03"), DataCenter: TriNo}, No},
		{"older, mixed GPUs", r2405, Host{Driver: v("535.129.03"), DataCenter: TriUnknown}, Unknown},
		{"no branch listed", r2501, Host{Driver: v("550.54.15"), DataCenter: TriYes}, No},
		{"no driver", r2405, Host{}, Unknown},
	} {
		assert.Check(t, is.Equal(tc.rel.FitOn(tc.host), tc.want), tc.name)
	}
}

func TestRequirementFit(t *testing.T) {
	tab := testTable(t)
	r2405, _ := tab.Release("24.05")
	q := Requirement{MinDriver: v("550.54.15"), CUDA: "12.4.1.003", Compat: true}
	noCompat := q
	noCompat.Compat = false
	for _, tc := range []struct {
		name   string
		q      Requirement
		host   Host
		rel    *Release
		want   Fit
		listed bool
	}{
		{"native", q, Host{Driver: v("570.86"), DataCenter: TriNo}, nil, Native, true},
		{"GeForce below", q, Host{Driver: v("535.129.03"), DataCenter: TriNo}, nil, No, false},
		{"data centre with compat libraries", q, Host{Driver: v("535.129.03"), DataCenter: TriYes}, &r2405, ForwardCompat, true},
		{"data centre, a branch the notes do not list", q, Host{Driver: v("530.30"), DataCenter: TriYes}, &r2405, ForwardCompat, false},
		{"data centre, release unknown", q, Host{Driver: v("530.30"), DataCenter: TriYes}, nil, ForwardCompat, true},
		{"data centre without compat libraries", noCompat, Host{Driver: v("535.129.03"), DataCenter: TriYes}, nil, No, false},
		{"GPU kind unknown", q, Host{Driver: v("535.129.03")}, nil, Unknown, false},
	} {
		fit, listed := tc.q.FitOn(tc.host, tc.rel)
		assert.Check(t, is.Equal(fit, tc.want), tc.name)
		assert.Check(t, is.Equal(listed, tc.listed), tc.name)
	}
}

func TestDataCenter(t *testing.T) {
	assert.Check(t, is.Equal(DataCenter([]int{2, 14}), TriYes))
	assert.Check(t, is.Equal(DataCenter([]int{14, 5}), TriNo))
	assert.Check(t, is.Equal(DataCenter([]int{14, -1}), TriUnknown))
	assert.Check(t, is.Equal(DataCenter(nil), TriUnknown))
}

func TestRequirementOf(t *testing.T) {
	q, ok := RequirementOf(map[string]string{"CUDA_DRIVER_VERSION": "550.54.15", "CUDA_VERSION": "12.4.1.003", "_CUDA_COMPAT_PATH": "/usr/local/cuda/compat", "NVIDIA_REQUIRE_CUDA": "cuda>=9.0"})
	assert.Check(t, ok)
	assert.Check(t, is.Equal(q.MinDriver.String(), "550.54.15"))
	assert.Check(t, is.Equal(q.CUDA, "12.4.1.003"))
	assert.Check(t, q.Compat)
	_, ok = RequirementOf(map[string]string{"CUDA_VERSION": "12.4.1"})
	assert.Check(t, !ok, "nvidia/cuda images have no CUDA_DRIVER_VERSION")
	_, ok = RequirementOf(map[string]string{"CUDA_DRIVER_VERSION": "latest"})
	assert.Check(t, !ok)
}

func TestIdentifyAndNewest(t *testing.T) {
	tab := testTable(t)
	img, rel, ok := tab.Identify("nvcr.io/nvidia/pytorch:24.05-py3")
	assert.Check(t, ok)
	assert.Check(t, is.Equal(img.Framework, "pytorch"))
	assert.Check(t, is.Equal(rel.Name, "24.05"))
	for _, ref := range []string{"nvcr.io/nvidia/pytorch:26.01-py3", "nvcr.io/nvidia/pytorch", "myimage:24.05-py3", "nvcr.io/nvidia/tensorflow:25.01-tf2-py3"} {
		_, _, ok := tab.Identify(ref)
		assert.Check(t, !ok, ref)
	}
	pt, _ := tab.Image("pytorch")
	newest, ok := tab.NewestNative(pt, v("545.23.08"))
	assert.Check(t, ok)
	assert.Check(t, is.Equal(pt.Ref(newest), "nvcr.io/nvidia/pytorch:23.10-py3"))
	_, ok = tab.NewestNative(pt, v("470.57"))
	assert.Check(t, !ok)
	tf, _ := tab.Image("tensorflow")
	newest, _ = tab.NewestNative(tf, v("580.95"))
	assert.Check(t, is.Equal(tf.Ref(newest), "nvcr.io/nvidia/tensorflow:24.05-tf2-py3"), "no TensorFlow after its last release")
}

// The table kept in the repository reads, is in order, has a source on
// every row, covers 2023 onwards, and its images' ranges are releases of it.
func TestDefaultTable(t *testing.T) {
	tab, err := Default()
	assert.NilError(t, err)
	assert.Assert(t, len(tab.Releases) >= 12)
	assert.Check(t, is.Equal(tab.Releases[0].Name <= "23.01", true), "the table starts at %s", tab.Releases[0].Name)
	for i, r := range tab.Releases {
		if i > 0 {
			// A later release never needs an older driver.
			assert.Check(t, r.MinDriver.Compare(tab.Releases[i-1].MinDriver) >= 0, "%s needs %s, older than %s's %s", r.Name, r.MinDriver, tab.Releases[i-1].Name, tab.Releases[i-1].MinDriver)
		}
		for _, c := range r.Compat {
			assert.Check(t, c.Compare(r.MinDriver) < 0, "%s: compat branch %s is not older than its minimum %s", r.Name, c, r.MinDriver)
		}
	}
	for _, fw := range []string{"pytorch"} {
		img, ok := tab.Image(fw)
		assert.Check(t, ok, fw)
		assert.Check(t, len(tab.ReleasesOf(img)) > 0, fw)
	}
}
