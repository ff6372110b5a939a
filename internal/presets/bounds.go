package presets

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on preset files, so that loading them stays fast and their errors
// stay short, whatever a file holds.
const (
	// maxFileSize is the largest preset file read, in bytes.
	maxFileSize = 1 << 20
	// maxEcho is how many characters of a value an error message repeats.
	maxEcho = 80
	// maxMessage is how many characters of a parser's message an error
	// message repeats.
	maxMessage = 200
	// maxKnown is how many characters of preset names an error message
	// lists as known.
	maxKnown = 400
)

// maxExtendsDepth is the most presets an extends chain may hold, the preset
// itself included; a variable so that tests can lift it.
var maxExtendsDepth = 64

// Echo returns s quoted for an error message, as %q would; one longer than
// maxEcho characters is cut there, with "…" and its length. Every value
// an error of docker perceptron's repeats goes through it.
func Echo(s string) string {
	n, all := fit(s, maxEcho)
	if all {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:n]+"…") + fmt.Sprintf(" (%d bytes)", len(s))
}

// bare returns s for an error message as it is when that is plain (an
// option name), else quoted and cut as Echo does.
func bare(s string) string {
	if len(s) > 0 && len(s) <= maxEcho && strconv.Quote(s) == `"`+s+`"` {
		return s
	}
	return Echo(s)
}

// fit returns the length of the longest prefix of s, cut at a character,
// that takes at most width characters quoted, and whether that is all of s.
func fit(s string, width int) (int, bool) {
	w := 0
	for i, r := range s {
		if r == utf8.RuneError {
			w += 4 // an invalid byte is quoted as \xNN
		} else {
			// As in a quoted string: `"` takes two ("\""), which a
			// quoted rune does not escape.
			w += len(strconv.Quote(string(r))) - 2
		}
		if w > width {
			return i, false
		}
	}
	return len(s), true
}

// oneLine returns msg, another parser's error message, as one line of at
// most maxMessage characters: control characters escaped, the rest cut with
// "…".
func oneLine(msg string) string {
	n, all := fit(msg, maxMessage)
	var b strings.Builder
	for _, r := range msg[:n] {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	if !all {
		b.WriteString("…")
	}
	return b.String()
}

// shortError is an error whose message was made fit to repeat.
type shortError struct {
	msg string
	err error
}

func (e *shortError) Error() string { return e.msg }

func (e *shortError) Unwrap() error { return e.err }

// parserError returns the error of a parser given value, fit to repeat:
// its message made one short line, the value cut where it repeats it.
func parserError(err error, value string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if n, all := fit(value, maxEcho); !all {
		msg = strings.ReplaceAll(msg, value, value[:n]+"…")
	}
	if short := oneLine(msg); short != err.Error() {
		return &shortError{msg: short, err: err}
	}
	return err
}

// knownList lists names for an error message, cut after maxKnown
// characters.
func knownList(names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			if b.Len() > maxKnown {
				fmt.Fprintf(&b, ", … (%d more)", len(names)-i)
				break
			}
			b.WriteString(", ")
		}
		b.WriteString(bare(n))
	}
	return b.String()
}

// chainText renders an extends chain "a -> b -> c" for an error message,
// leaving out the middle of a long one.
func chainText(names []string) string {
	const ends = 4
	parts := make([]string, 0, 2*ends+1)
	for i, n := range names {
		if len(names) > 2*ends+1 && i == ends {
			parts = append(parts, fmt.Sprintf("… (%d more)", len(names)-2*ends))
		}
		if len(names) > 2*ends+1 && i >= ends && i < len(names)-ends {
			continue
		}
		parts = append(parts, bare(n))
	}
	return strings.Join(parts, " -> ")
}
