package preflight

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/perceptron/docker-perceptron/internal/gpus"
	"github.com/perceptron/docker-perceptron/internal/ngc"
)

// checkImageDriver: an NGC image whose minimum driver (CUDA_DRIVER_VERSION;
// its NVIDIA_REQUIRE_CUDA says only cuda>=9.0) is newer than the host's.
// On GPUs that cannot use CUDA forward compatibility it cannot start CUDA,
// and the run is refused with the newest tag that this driver runs; on
// data-centre GPUs with the image's compat libraries it runs, with a
// warning. NVIDIA_DISABLE_REQUIRE turns the check off, as it does the
// toolkit's.
func checkImageDriver(in Input) []Finding {
	if !in.GPURequested && !in.GPUChoice || in.HostDriver == "" || in.Image == nil {
		return nil
	}
	env := in.env()
	if off, _ := strconv.ParseBool(env[envDisableRequire]); off {
		return nil
	}
	req, ok := ngc.RequirementOf(env)
	driver, err := ngc.ParseVersion(in.HostDriver)
	if !ok || err != nil {
		return nil
	}
	table, _ := ngc.Default() // the embedded table is checked by its tests
	img, rel, known := table.Identify(in.Image.Ref)
	var relp *ngc.Release
	if known {
		relp = &rel
	}
	fit, listed := req.FitOn(ngc.Host{Driver: driver, DataCenter: in.HostDataCenter}, relp)
	const check = "image-driver"
	needs := fmt.Sprintf("image %s needs NVIDIA driver %s or newer (CUDA_DRIVER_VERSION), and this host has %s", in.Image.Ref, req.MinDriver, in.HostDriver)
	instead := nativeInstead(table, img, known, driver, req.MinDriver)
	switch fit {
	case ngc.Native:
		return []Finding{{Check: check, Level: OK, Message: fmt.Sprintf("image needs driver %s, host has %s", req.MinDriver, in.HostDriver)}}
	case ngc.No:
		why := "GPUs that cannot run it through CUDA forward compatibility (data-centre GPUs only)"
		if !req.Compat {
			why = "and the image ships no CUDA forward-compatibility libraries"
		}
		return []Finding{{Check: check, Level: Fail, Message: needs + " on " + why,
			Fix: instead + " (NVIDIA_DISABLE_REQUIRE=1 skips this check)"}}
	case ngc.Unknown:
		return []Finding{{Check: check, Level: Warn, Message: needs + "; it runs only through CUDA forward compatibility, on data-centre GPUs, and this host's GPUs are not all known to be",
			Fix: instead}}
	}
	msg := needs + ": it runs in CUDA forward-compatibility mode, on the newer CUDA driver libraries the image ships (/usr/local/cuda/compat), which data-centre GPUs allow"
	if !listed {
		msg += fmt.Sprintf("; its release notes do not list the %d driver branch for that, so CUDA may fail to start", driver.Major())
	}
	return []Finding{{Check: check, Level: Warn, Message: msg, Fix: "to run natively: " + instead}}
}

// nativeInstead says what runs natively on driver: the newest release of
// the same framework image, or the driver to install.
func nativeInstead(t ngc.Table, img ngc.Image, known bool, driver, min ngc.Version) string {
	install := "install NVIDIA driver " + min.String() + " or newer"
	if !known {
		return "build FROM an NGC release that driver " + driver.String() + " runs natively ('docker perceptron ngc' lists them), or " + install
	}
	if r, ok := t.NewestNative(img, driver); ok {
		return "use " + img.Ref(r) + ", the newest " + img.Framework + " release that driver " + driver.String() + " runs natively, or " + install
	}
	return install + " (no " + img.Framework + " release in docker perceptron's table runs natively on " + driver.String() + ")"
}

// ngcFinding says which NGC framework releases this host's driver runs
// natively: the newest of each image in the table.
func ngcFinding(inv gpus.Inventory) (Finding, bool) {
	driver, err := ngc.ParseVersion(inv.DriverVersion)
	table, tErr := ngc.Default()
	if err != nil || tErr != nil {
		return Finding{}, false
	}
	var newest, short []string
	for _, img := range table.Images {
		if r, ok := table.NewestNative(img, driver); ok {
			newest = append(newest, img.Ref(r))
			short = append(short, img.Framework+" "+r.Name)
		}
	}
	if len(newest) == 0 {
		return Finding{Check: "ngc", Level: Warn,
			Message: "no NGC release in the table runs natively on driver " + inv.DriverVersion,
			Fix:     "install a newer NVIDIA driver (see docker perceptron ngc)",
			Detail: "no NGC framework release in docker perceptron's table runs natively on driver " + inv.DriverVersion +
				" (fix: install a newer NVIDIA driver; 'docker perceptron ngc' lists what each release needs)"}, true
	}
	return Finding{Check: "ngc", Level: OK, Message: "newest native NGC releases: " + strings.Join(short, ", "),
		Detail: "newest NGC releases driver " + inv.DriverVersion + " runs natively: " + strings.Join(newest, ", ")}, true
}
