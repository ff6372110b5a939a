package preflight

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The image's CUDA requirement, evaluated as the NVIDIA Container Toolkit
// does (internal/requirements in nvidia-container-toolkit):
//
//   - every NVIDIA_REQUIRE_* variable except NVIDIA_REQUIRE_JETPACK is a
//     requirement, and all of them must hold;
//   - an image with CUDA_VERSION=X.Y.Z but no NVIDIA_REQUIRE_CUDA ("legacy"
//     image) requires cuda>=X.Y;
//   - within a requirement, space-separated terms are OR'ed and the
//     comma-separated factors of a term are AND'ed, so
//     "cuda>=12.8 brand=tesla,driver>=470,driver<471" holds on a driver
//     that supports CUDA 12.8, or on a Tesla with a 470 driver (which runs
//     the image through the CUDA forward-compatibility libraries);
//   - properties are cuda (the driver's CUDA version), driver, arch and
//     brand; factors on other properties are ignored;
//   - NVIDIA_DISABLE_REQUIRE=true (any strconv.ParseBool truth) turns the
//     check off.
//
// Versions are compared numerically part by part ("12.10" > "12.9").
// Unlike the toolkit we do not know every property (arch, sometimes brand or
// driver), so evaluation is three-valued: a requirement that is false for
// sure fails the run, one that depends on an unknown property only warns.

const (
	envRequirePrefix  = "NVIDIA_REQUIRE_"
	envRequireCUDA    = "NVIDIA_REQUIRE_CUDA"
	envRequireJetpack = "NVIDIA_REQUIRE_JETPACK"
	envDisableRequire = "NVIDIA_DISABLE_REQUIRE"
	envCUDAVersion    = "CUDA_VERSION"
)

// truth is a three-valued boolean ordered so that AND is min and OR is max.
type truth int8

const (
	isFalse truth = iota
	isUnknown
	isTrue
)

// hostProps are the values the requirement properties take on this host;
// "" is unknown.
type hostProps struct {
	cuda, driver, brand, arch string
}

// CUDARequirements returns the requirement strings an image environment
// carries (after the run's env overrides), in a stable order, or nil when
// the check is disabled or there is none.
func CUDARequirements(env map[string]string) []string {
	if v, ok := env[envDisableRequire]; ok {
		if disabled, _ := strconv.ParseBool(v); disabled {
			return nil
		}
	}
	var reqs []string
	for k, v := range env {
		if strings.HasPrefix(k, envRequirePrefix) && !strings.HasPrefix(k, envRequireJetpack) {
			reqs = append(reqs, v)
		}
	}
	slices.Sort(reqs)
	if _, ok := env[envRequireCUDA]; !ok {
		if mm := majorMinor(env[envCUDAVersion]); mm != "" {
			reqs = append(reqs, "cuda>="+mm)
		}
	}
	return reqs
}

// evalRequirements evaluates all requirements against the host (AND).
func evalRequirements(reqs []string, host hostProps) truth {
	result := isTrue
	for _, r := range reqs {
		result = min(result, evalRequirement(r, host))
	}
	return result
}

// evalRequirement evaluates one requirement: OR over space-separated terms,
// AND over comma-separated factors. Terms whose factors are all ignored are
// dropped; a requirement with no terms left holds.
func evalRequirement(req string, host hostProps) truth {
	result, terms := isFalse, 0
	for _, term := range strings.Fields(req) {
		termResult, factors := isTrue, 0
		for _, factor := range strings.Split(term, ",") {
			v, ok := evalFactor(factor, host)
			if !ok {
				continue
			}
			factors++
			termResult = min(termResult, v)
		}
		if factors == 0 {
			continue
		}
		terms++
		result = max(result, termResult)
	}
	if terms == 0 {
		return isTrue
	}
	return result
}

// evalFactor evaluates "property<op>value"; ok is false for a factor the
// toolkit ignores (unknown property, empty).
func evalFactor(factor string, host hostProps) (truth, bool) {
	factor = strings.TrimSpace(factor)
	end := strings.IndexAny(factor, "<>=!")
	if factor == "" || end <= 0 {
		return isUnknown, end == 0 // "=x" is malformed: unknown; "" ignored
	}
	prop, rest := factor[:end], factor[end:]
	var have string
	version := true
	switch prop {
	case "cuda":
		have = host.cuda
	case "driver":
		have = host.driver
	case "arch":
		have = host.arch
	case "brand":
		have, version = host.brand, false
	default:
		return isUnknown, false
	}
	var op string
	for _, o := range []string{"!=", "<=", ">=", "=", "<", ">"} {
		if strings.HasPrefix(rest, o) {
			op = o
			break
		}
	}
	want := strings.TrimPrefix(rest, op)
	if op == "" || want == "" || have == "" {
		return isUnknown, true
	}
	var cmp int
	if version {
		c, ok := compareVersions(have, want)
		if !ok {
			return isUnknown, true
		}
		cmp = c
	} else {
		cmp = strings.Compare(strings.ToLower(have), strings.ToLower(want))
	}
	if opHolds(op, cmp) {
		return isTrue, true
	}
	return isFalse, true
}

// opHolds reports whether a comparison's result cmp (-1, 0, 1) satisfies op.
func opHolds(op string, cmp int) bool {
	switch op {
	case "!=":
		return cmp != 0
	case "<=":
		return cmp <= 0
	case ">=":
		return cmp >= 0
	case "=":
		return cmp == 0
	case "<":
		return cmp < 0
	}
	return cmp > 0 // ">"
}

// compareVersions compares dotted numeric versions; missing parts are 0.
func compareVersions(a, b string) (int, bool) {
	pa, pb := strings.Split(strings.TrimPrefix(a, "v"), "."), strings.Split(strings.TrimPrefix(b, "v"), ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y uint64
		var err error
		if i < len(pa) {
			if x, err = strconv.ParseUint(pa[i], 10, 32); err != nil {
				return 0, false
			}
		}
		if i < len(pb) {
			if y, err = strconv.ParseUint(pb[i], 10, 32); err != nil {
				return 0, false
			}
		}
		if x != y {
			if x < y {
				return -1, true
			}
			return 1, true
		}
	}
	return 0, true
}

// majorMinor turns "12.4.1" into "12.4"; "" when v is not a version.
func majorMinor(v string) string {
	parts := strings.Split(strings.TrimPrefix(strings.TrimSpace(v), "v"), ".")
	if len(parts) < 2 {
		return ""
	}
	for _, p := range parts[:2] {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil {
			return ""
		}
	}
	return parts[0] + "." + parts[1]
}

// requiredCUDA is the highest "cuda>=X.Y" the requirements name, for the
// message; "" when none does.
func requiredCUDA(reqs []string) string {
	best := ""
	for _, r := range reqs {
		for _, term := range strings.Fields(r) {
			for _, factor := range strings.Split(term, ",") {
				v, ok := strings.CutPrefix(strings.TrimSpace(factor), "cuda>=")
				if !ok {
					continue
				}
				if c, ok := compareVersions(v, best); best == "" || ok && c > 0 {
					best = v
				}
			}
		}
	}
	return best
}

// minDriverForCUDA is the first Linux driver branch that supports each CUDA
// version (CUDA toolkit release notes, "CUDA Toolkit and Corresponding
// Driver Versions").
var minDriverForCUDA = map[string]string{
	"11.0": "450", "11.1": "455", "11.2": "460", "11.3": "465", "11.4": "470",
	"11.5": "495", "11.6": "510", "11.7": "515", "11.8": "520",
	"12.0": "525", "12.1": "530", "12.2": "535", "12.3": "545", "12.4": "550",
	"12.5": "555", "12.6": "560", "12.8": "570", "12.9": "575", "13.0": "580",
}

// checkImageCUDA: (a) the image needs a newer CUDA than the host driver has.
func checkImageCUDA(in Input) []Finding {
	if !in.GPURequested && !in.GPUChoice || in.HostCUDA == "" {
		return nil
	}
	env := in.env()
	reqs := CUDARequirements(env)
	if len(reqs) == 0 {
		return nil
	}
	host := hostProps{cuda: in.HostCUDA, driver: in.HostDriver, brand: in.HostBrand}
	got := evalRequirements(reqs, host)
	if got == isTrue {
		return []Finding{{Check: "image-cuda", Level: OK, Message: fmt.Sprintf("image requirements met by CUDA %s", in.HostCUDA)}}
	}
	want := requiredCUDA(reqs)
	source := envRequireCUDA
	if _, ok := env[envRequireCUDA]; !ok {
		source = envCUDAVersion + "=" + env[envCUDAVersion]
	}
	driver := "the host driver"
	if in.HostDriver != "" {
		driver = "the host driver " + in.HostDriver
	}
	if got == isUnknown {
		return []Finding{{
			Check: "image-cuda", Level: Warn,
			Message: fmt.Sprintf("cannot tell whether %s (CUDA %s) meets the image's requirement %q", driver, in.HostCUDA, strings.Join(reqs, " ")),
			Fix:     "if the container fails with \"unsatisfied condition\", use an image built for CUDA " + in.HostCUDA + " or older",
		}}
	}
	msg := fmt.Sprintf("image requires CUDA %s (%s) but %s supports CUDA %s; docker would fail with \"unsatisfied condition: cuda>=%s\"", want, source, driver, in.HostCUDA, want)
	if want == "" {
		msg = fmt.Sprintf("image requirement %q is not met by %s (CUDA %s)", strings.Join(reqs, " "), driver, in.HostCUDA)
		want = "the image's version"
	}
	newer := "install a driver that supports CUDA " + want
	if branch, ok := minDriverForCUDA[want]; ok {
		newer += " (" + branch + " or newer)"
	}
	return []Finding{{
		Check: "image-cuda", Level: Fail, Message: msg,
		Fix: newer + ", or use an image tag built for CUDA " + in.HostCUDA + " or older" +
			" (NVIDIA_DISABLE_REQUIRE=1 skips the check, at the risk of CUDA errors at run time)",
	}}
}

// brandNames are the brand names NVIDIA_REQUIRE_CUDA uses, by NVML brand
// number (nvmlBrandType_t).
var brandNames = []string{
	"unknown", "quadro", "tesla", "nvs", "grid", "geforce", "titan",
	"vapps", "vpc", "vcs", "vws", "cloudgaming", "quadrortx", "nvidiartx",
	"nvidia", "geforcertx", "titanrtx",
}

// BrandName turns an NVML brand (int(nvml.BrandType)) into the name
// NVIDIA_REQUIRE_CUDA's brand= terms use, for Input.HostBrand; "" when it
// has none.
func BrandName(nvmlBrand int) string {
	if nvmlBrand < 0 || nvmlBrand >= len(brandNames) {
		return ""
	}
	return brandNames[nvmlBrand]
}
