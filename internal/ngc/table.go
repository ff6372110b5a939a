// Package ngc knows NVIDIA's NGC framework container releases (the table in
// releases.tsv and images.tsv, each row with its source) and decides
// whether one runs on a host's driver: natively, through CUDA forward
// compatibility, or not.
package ngc

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// Release is one monthly NGC release ("24.05") of the framework images.
type Release struct {
	Name string
	CUDA string // the CUDA toolkit in its images, "12.4.1"
	// MinDriver is the oldest driver that runs it natively.
	MinDriver Version
	// Compat are the data-centre driver branches (the oldest version of
	// each) on which it runs through CUDA forward compatibility, as its
	// release notes list them; none when they list none.
	Compat []Version
	Source string
}

// Image is a framework's image: where it is, and the tag of a release.
type Image struct {
	Framework  string // "pytorch"
	Repository string // "nvcr.io/nvidia/pytorch"
	Tag        string // "{release}-py3"
	// First and Last are the releases (of the table) that have it; Last ""
	// while it is still published.
	First, Last string
	Source      string
}

// Table is the releases, oldest first, and the images.
type Table struct {
	Releases []Release
	Images   []Image
}

var releaseName = regexp.MustCompile(`^[0-9]{2}\.(0[1-9]|1[0-2])$`)

// Parse reads the two tab-separated files (see the README's "Adding an NGC
// release"): a header line, then one row per line; "#" lines are comments.
func Parse(releases, images []byte) (Table, error) {
	var t Table
	err := rows(releases, "releases.tsv", "release\tcuda\tmin_driver\tcompat_drivers\tsource", func(f []string) error {
		r, err := parseRelease(f)
		if err != nil {
			return err
		}
		if n := len(t.Releases); n > 0 && t.Releases[n-1].Name >= r.Name {
			return fmt.Errorf("release %s after %s: keep the releases in order, each once", r.Name, t.Releases[n-1].Name)
		}
		t.Releases = append(t.Releases, r)
		return nil
	})
	if err != nil {
		return Table{}, err
	}
	err = rows(images, "images.tsv", "framework\trepository\ttag\tfirst\tlast\tsource", func(f []string) error {
		img, err := t.parseImage(f)
		if err == nil {
			t.Images = append(t.Images, img)
		}
		return err
	})
	if err != nil {
		return Table{}, err
	}
	return t, nil
}

// rows calls row with the fields of each data line of a file.
func rows(data []byte, file, header string, row func([]string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	line, seenHeader := 0, false
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#"):
			continue
		case !seenHeader:
			if text != header {
				return fmt.Errorf("%s:%d: the header must be %q", file, line, header)
			}
			seenHeader = true
			continue
		}
		f := strings.Split(text, "\t")
		if want := strings.Count(header, "\t") + 1; len(f) != want {
			return fmt.Errorf("%s:%d: %d fields, want %d separated by tabs", file, line, len(f), want)
		}
		if err := row(f); err != nil {
			return fmt.Errorf("%s:%d: %w", file, line, err)
		}
	}
	if !seenHeader {
		return fmt.Errorf("%s: no header", file)
	}
	return sc.Err()
}

func parseRelease(f []string) (Release, error) {
	r := Release{Name: f[0], CUDA: f[1], Source: f[4]}
	if !releaseName.MatchString(r.Name) {
		return Release{}, fmt.Errorf("invalid release %q: use YY.MM", r.Name)
	}
	if _, err := ParseVersion(r.CUDA); err != nil {
		return Release{}, fmt.Errorf("release %s: cuda: %w", r.Name, err)
	}
	var err error
	if r.MinDriver, err = ParseVersion(f[2]); err != nil {
		return Release{}, fmt.Errorf("release %s: min_driver: %w", r.Name, err)
	}
	if f[3] != "-" {
		for _, c := range strings.Split(f[3], ",") {
			v, err := ParseVersion(c)
			if err != nil {
				return Release{}, fmt.Errorf("release %s: compat_drivers: %w", r.Name, err)
			}
			r.Compat = append(r.Compat, v)
		}
	}
	if err := checkSource(r.Source); err != nil {
		return Release{}, fmt.Errorf("release %s: %w", r.Name, err)
	}
	return r, nil
}

func (t Table) parseImage(f []string) (Image, error) {
	img := Image{Framework: f[0], Repository: f[1], Tag: f[2], First: f[3], Last: f[4], Source: f[5]}
	if img.Last == "-" {
		img.Last = ""
	}
	switch {
	case !regexp.MustCompile(`^[a-z0-9-]+$`).MatchString(img.Framework):
		return Image{}, fmt.Errorf("invalid framework %q: use lower-case letters", img.Framework)
	case !strings.HasPrefix(img.Repository, "nvcr.io/"):
		return Image{}, fmt.Errorf("framework %s: the repository must be on nvcr.io", img.Framework)
	case !strings.Contains(img.Tag, "{release}"):
		return Image{}, fmt.Errorf("framework %s: the tag must contain {release}", img.Framework)
	case !t.has(img.First), img.Last != "" && !t.has(img.Last), img.Last != "" && img.Last < img.First:
		return Image{}, fmt.Errorf("framework %s: first and last must be releases of the table, in order", img.Framework)
	}
	if _, dup := t.Image(img.Framework); dup {
		return Image{}, fmt.Errorf("framework %s listed twice", img.Framework)
	}
	return img, checkSource(img.Source)
}

func checkSource(s string) error {
	for _, u := range strings.Fields(s) {
		if !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("invalid source %q: give the https:// address of NVIDIA's page", u)
		}
	}
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("no source: give the https:// address of NVIDIA's page")
	}
	return nil
}

func (t Table) has(release string) bool {
	_, ok := t.Release(release)
	return ok
}

// Release finds a release by name.
func (t Table) Release(name string) (Release, bool) {
	for _, r := range t.Releases {
		if r.Name == name {
			return r, true
		}
	}
	return Release{}, false
}

// Image finds a framework's image.
func (t Table) Image(framework string) (Image, bool) {
	for _, img := range t.Images {
		if img.Framework == framework {
			return img, true
		}
	}
	return Image{}, false
}

// Frameworks are the frameworks the table knows, in its order.
func (t Table) Frameworks() []string {
	out := make([]string, len(t.Images))
	for i, img := range t.Images {
		out[i] = img.Framework
	}
	return out
}

// ReleasesOf are the releases that have img, oldest first.
func (t Table) ReleasesOf(img Image) []Release {
	var out []Release
	for _, r := range t.Releases {
		if r.Name >= img.First && (img.Last == "" || r.Name <= img.Last) {
			out = append(out, r)
		}
	}
	return out
}

// Ref is the full reference of img at release r: "nvcr.io/nvidia/pytorch:24.05-py3".
func (img Image) Ref(r Release) string {
	return img.Repository + ":" + strings.ReplaceAll(img.Tag, "{release}", r.Name)
}

// NewestNative is the newest release of img that driver runs natively.
func (t Table) NewestNative(img Image, driver Version) (Release, bool) {
	rs := t.ReleasesOf(img)
	for i := len(rs) - 1; i >= 0; i-- {
		if driver.Compare(rs[i].MinDriver) >= 0 {
			return rs[i], true
		}
	}
	return Release{}, false
}
