package presets

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// valueError returns the error of flag f's parser for value in words of
// docker run's options: the allowed values, never the message of Go's
// strconv or time packages, which pflag's typed options and some of
// docker's parsers pass on as they are.
func valueError(f *pflag.Flag, value string, err error) error {
	var numErr *strconv.NumError
	outOfRange := errors.As(err, &numErr) && errors.Is(numErr.Err, strconv.ErrRange)
	switch t := f.Value.Type(); t {
	case "bool":
		if f.Name == "tty" {
			return errors.New("use true, false or auto (a terminal when stdin is one)")
		}
		return errors.New("use true or false")
	case "int", "int8", "int16", "int32", "int64":
		if outOfRange {
			return fmt.Errorf("use a whole number from %d to %d", -(int64(1) << (bitSize(t) - 1)), int64(1)<<(bitSize(t)-1)-1)
		}
		return errors.New("use a whole number")
	case "uint", "uint8", "uint16", "uint32", "uint64":
		if bitSize(t) < 64 {
			return fmt.Errorf("use a whole number from 0 to %d", uint64(1)<<bitSize(t)-1)
		}
		return errors.New("use a whole number, 0 or more")
	case "float32", "float64":
		return errors.New("use a number")
	case "duration":
		return errors.New("use a duration such as 30s, 1m30s or 500ms")
	case "umask":
		return errors.New("use an octal mask such as 0022")
	}
	return &shortError{msg: plainNumbers(err.Error()), err: err}
}

// bitSize returns the size of the integer type t: 8 for "int8", 64 for
// "int" and "uint".
func bitSize(t string) int {
	n, err := strconv.Atoi(strings.TrimLeft(t, "uint"))
	if err != nil {
		return 64
	}
	return n
}

var (
	// strconvText is strconv's message for a number it could not parse:
	// `strconv.ParseInt: parsing "x": invalid syntax`.
	strconvText = regexp.MustCompile(`strconv\.[A-Za-z0-9]+: parsing ("(?:[^"\\]|\\.)*"): (invalid syntax|value out of range)`)
	// strconvTail is the same message, cut to its reason, at the end of
	// another parser's message: `invalid count (x): …: invalid syntax`.
	strconvTail = regexp.MustCompile(`: (invalid syntax|value out of range)$`)
)

// plainNumbers rewrites the strconv messages within msg: "x" is not a whole
// number, or is out of range.
func plainNumbers(msg string) string {
	msg = strconvText.ReplaceAllStringFunc(msg, func(m string) string {
		sub := strconvText.FindStringSubmatch(m)
		if sub[2] == "invalid syntax" {
			return sub[1] + " is not a whole number"
		}
		return sub[1] + " is out of range"
	})
	return strconvTail.ReplaceAllStringFunc(msg, func(m string) string {
		if strings.HasSuffix(m, "invalid syntax") {
			return ": not a whole number"
		}
		return ": out of range"
	})
}
