package ngc

import (
	"strings"
)

// Fit is how a release, or an image, runs on a host.
type Fit string

const (
	// Native: the host's driver is at least the image's minimum.
	Native Fit = "native"
	// ForwardCompat: an older driver of a branch that the image's CUDA
	// forward-compatibility libraries support, on data-centre GPUs: CUDA
	// runs through the libraries the image ships (/usr/local/cuda/compat).
	ForwardCompat Fit = "forward-compat"
	// No: it does not run here.
	No Fit = "no"
	// Unknown: the host's driver, or its GPUs' kind, is not known.
	Unknown Fit = "unknown"
)

// Host is what decides a fit: the driver, and whether every GPU is a
// data-centre one (forward compatibility is "applicable only for systems
// with NVIDIA Data Center GPUs, select NGC Server Ready SKUs of RTX cards,
// and Jetson boards":
// https://docs.nvidia.com/deploy/cuda-compatibility/forward-compatibility.html).
type Host struct {
	Driver     Version // zero: unknown
	DataCenter Tri
}

// Tri is a three-valued answer.
type Tri int8

const (
	TriUnknown Tri = iota
	TriNo
	TriYes
)

// dataCenterBrands are the NVML brands (nvmlBrandType_t) of data-centre
// GPUs: Tesla (V100 and older data-centre GPUs) and NVIDIA (A100, H100,
// H200, B200 and the other data-centre GPUs since Ampere).
var dataCenterBrands = map[int]bool{2: true, 14: true}

// DataCenter tells whether GPUs of these NVML brands are all data-centre
// ones; an unknown brand (-1 or 0) makes the answer unknown.
func DataCenter(brands []int) Tri {
	if len(brands) == 0 {
		return TriUnknown
	}
	answer := TriYes
	for _, b := range brands {
		switch {
		case b <= 0:
			return TriUnknown
		case !dataCenterBrands[b]:
			answer = TriNo
		}
	}
	return answer
}

// FitOn is how r runs on h.
func (r Release) FitOn(h Host) Fit {
	switch {
	case h.Driver.IsZero():
		return Unknown
	case h.Driver.Compare(r.MinDriver) >= 0:
		return Native
	case !r.compatBranch(h.Driver):
		return No
	case h.DataCenter == TriYes:
		return ForwardCompat
	case h.DataCenter == TriNo:
		return No
	}
	return Unknown
}

// compatBranch reports whether driver is on a branch the release's forward
// compatibility supports, and new enough in it.
func (r Release) compatBranch(driver Version) bool {
	for _, c := range r.Compat {
		if c.Major() == driver.Major() && driver.Compare(c) >= 0 {
			return true
		}
	}
	return false
}

// Requirement is what an NGC image's environment says it needs:
// CUDA_DRIVER_VERSION (its minimum driver), CUDA_VERSION, and whether it
// ships the forward-compatibility libraries (_CUDA_COMPAT_PATH). NGC
// framework images set NVIDIA_REQUIRE_CUDA=cuda>=9.0, which every driver
// meets: these are their real requirement.
type Requirement struct {
	MinDriver Version
	CUDA      string
	Compat    bool
}

// RequirementOf reads an image's environment (name to value); ok is false
// when it carries no CUDA_DRIVER_VERSION (not an NGC image) or one that
// cannot be read.
func RequirementOf(env map[string]string) (Requirement, bool) {
	v, err := ParseVersion(env["CUDA_DRIVER_VERSION"])
	if env["CUDA_DRIVER_VERSION"] == "" || err != nil {
		return Requirement{}, false
	}
	return Requirement{MinDriver: v, CUDA: env["CUDA_VERSION"], Compat: env["_CUDA_COMPAT_PATH"] != ""}, true
}

// Identify finds the framework image and release of an image reference
// ("nvcr.io/nvidia/pytorch:24.05-py3"); ok is false for an image the table
// does not know, such as one built FROM it.
func (t Table) Identify(ref string) (Image, Release, bool) {
	repo, tag, found := strings.Cut(ref, ":")
	if !found || strings.Contains(tag, "/") {
		return Image{}, Release{}, false
	}
	for _, img := range t.Images {
		if img.Repository != repo {
			continue
		}
		for _, r := range t.ReleasesOf(img) {
			if img.Ref(r) == ref {
				return img, r, true
			}
		}
	}
	return Image{}, Release{}, false
}

// FitOn is how an image with requirement q runs on h. Forward
// compatibility needs the image's compat libraries and data-centre GPUs;
// rel, when the table knows the image's release, also says whether the
// host's driver branch is one its release notes list (listed reports it;
// an unlisted branch may still work, so it is no reason to refuse).
func (q Requirement) FitOn(h Host, rel *Release) (fit Fit, listed bool) {
	switch {
	case h.Driver.IsZero():
		return Unknown, false
	case h.Driver.Compare(q.MinDriver) >= 0:
		return Native, true
	case !q.Compat || h.DataCenter == TriNo:
		return No, false
	case h.DataCenter == TriUnknown:
		return Unknown, false
	}
	return ForwardCompat, rel == nil || rel.compatBranch(h.Driver)
}
