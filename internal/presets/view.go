package presets

import (
	"fmt"
	"strings"
)

// View is a preset as `docker perceptron presets show` renders it. Its JSON
// keys are its field names, which --format templates use, as docker's
// --format json; they are stable.
type View struct {
	Name        string
	Source      string
	File        string
	Description string
	Extends     string
	Options     []OptionView
}

// OptionView is one option of a View.
type OptionView struct {
	Option      string
	Value       string
	Explanation string
}

// NewView describes preset p, whose expanded settings are settings; usage
// returns the stock option's help text (see Explain).
func NewView(p *Preset, settings []Setting, usage func(flag string) string) View {
	v := View{Name: p.Name, Source: string(p.Source), File: p.File, Description: p.Description, Extends: p.Extends}
	for _, s := range settings {
		v.Options = append(v.Options, OptionView{Option: "--" + s.Flag, Value: s.Value, Explanation: Explain(s, usage)})
	}
	return v
}

// Text is the view as presets show prints it: the preset, then each option
// as a command-line argument with its explanation indented below.
func (v View) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Name:         %s\n", v.Name)
	fmt.Fprintf(&b, "Source:       %s\n", v.Source)
	if v.File != "" {
		fmt.Fprintf(&b, "File:         %s\n", v.File)
	}
	fmt.Fprintf(&b, "Description:  %s\n", v.Description)
	if v.Extends != "" {
		fmt.Fprintf(&b, "Extends:      %s\n", v.Extends)
	}
	b.WriteString("Options:\n")
	for _, o := range v.Options {
		arg := o.Option
		if !(IsBool(strings.TrimPrefix(o.Option, "--")) && o.Value == "true") {
			arg += " " + Quote(o.Value)
		}
		fmt.Fprintf(&b, "  %s\n", arg)
		if o.Explanation != "" {
			fmt.Fprintf(&b, "      %s\n", o.Explanation)
		}
	}
	return b.String()
}
