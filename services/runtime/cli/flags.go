package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// flagSet is a small runc-compatible parser: --name value, --name=value,
// -x short aliases, booleans, repeated flags, and flags mixed with
// positional arguments (until stopAfter positionals have been seen, after
// which everything is positional, as exec needs for the command).
type flagSet struct {
	bools     map[string]bool
	values    map[string][]string
	isBool    map[string]bool
	known     map[string]bool
	alias     map[string]string
	args      []string
	stopAfter int
}

func newFlags(boolFlags, valueFlags []string, alias map[string]string) *flagSet {
	f := &flagSet{bools: map[string]bool{}, values: map[string][]string{}, isBool: map[string]bool{}, known: map[string]bool{}, alias: alias}
	for _, b := range boolFlags {
		f.isBool[b], f.known[b] = true, true
	}
	for _, v := range valueFlags {
		f.known[v] = true
	}
	return f
}

func (f *flagSet) parse(args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if f.stopAfter > 0 && len(f.args) >= f.stopAfter {
			f.args = append(f.args, args[i:]...)
			return nil
		}
		if a == "--" {
			f.args = append(f.args, args[i+1:]...)
			return nil
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			f.args = append(f.args, a)
			continue
		}
		name := strings.TrimLeft(a, "-")
		val, hasVal := "", false
		if j := strings.IndexByte(name, '='); j >= 0 {
			name, val, hasVal = name[:j], name[j+1:], true
		}
		if full, ok := f.alias[name]; ok {
			name = full
		}
		if !f.known[name] {
			return fmt.Errorf("flag provided but not defined: -%s", name)
		}
		if f.isBool[name] {
			b := true
			if hasVal {
				var err error
				if b, err = strconv.ParseBool(val); err != nil {
					return fmt.Errorf("invalid boolean value %q for --%s", val, name)
				}
			}
			f.bools[name] = b
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return fmt.Errorf("flag needs an argument: --%s", name)
			}
			i++
			val = args[i]
		}
		f.values[name] = append(f.values[name], val)
	}
	return nil
}

func (f *flagSet) str(name string) string {
	v := f.values[name]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func (f *flagSet) list(name string) []string { return f.values[name] }

func (f *flagSet) boolean(name string) bool { return f.bools[name] }

func (f *flagSet) integer(name string) (int, error) {
	s := f.str(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid value %q for --%s", s, name)
	}
	return n, nil
}
