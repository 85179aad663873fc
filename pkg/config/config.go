// Package config binds the environment keys of the orbit-controller-config ConfigMap (SPEC §2)
// to command-line flags. Flags win: an environment value is used only for a flag that was not
// given on the command line, and a bad value is reported with the key that holds it.
package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// LookupEnv reads one environment variable; os.LookupEnv in main, a map in tests.
type LookupEnv func(key string) (string, bool)

// Binding maps an environment key to the flag it sets. Convert, when set, rewrites the raw
// value first (e.g. ORBIT_CONTROLLER_DEBUG=true → --log-level=debug).
type Binding struct {
	Env     string
	Flag    string
	Convert func(raw string) (string, error)
}

// Apply sets every flag not given on the command line from its environment key. It returns
// which flags took their value from which key, so a later validation error can name the key.
func Apply(fs *pflag.FlagSet, lookup LookupEnv, bindings []Binding) (map[string]string, error) {
	from := map[string]string{}
	for _, b := range bindings {
		raw, ok := lookup(b.Env)
		if !ok || strings.TrimSpace(raw) == "" {
			continue
		}
		f := fs.Lookup(b.Flag)
		if f == nil {
			return nil, fmt.Errorf("%s: bound to unknown flag --%s", b.Env, b.Flag)
		}
		if f.Changed {
			continue
		}
		value := strings.TrimSpace(raw)
		if b.Convert != nil {
			v, err := b.Convert(value)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", b.Env, err)
			}
			if v == "" {
				continue
			}
			value = v
		}
		if err := fs.Set(b.Flag, value); err != nil {
			return nil, fmt.Errorf("%s: invalid value %q: %w", b.Env, raw, err)
		}
		// Set marks the flag Changed; keep "given on the command line" meaning just that.
		f.Changed = false
		from[b.Flag] = b.Env
	}
	return from, nil
}

// NameSource rewrites a validation error that starts with "--flag:" to name the environment
// key the flag's value came from: "KEY (--flag): …". Other errors pass unchanged.
func NameSource(err error, from map[string]string) error {
	msg := err.Error()
	if !strings.HasPrefix(msg, "--") {
		return err
	}
	name, _, ok := strings.Cut(msg[2:], ":")
	if !ok {
		return err
	}
	if key, ok := from[name]; ok {
		return fmt.Errorf("%s (--%s):%s", key, name, msg[len(name)+3:])
	}
	return err
}

// ParseBool accepts true/yes/1 and false/no/0, case-insensitively (the original platform's
// ConfigMap used all of them).
func ParseBool(raw string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(raw)) {
	case "true", "yes", "1", "on":
		return true, nil
	case "false", "no", "0", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (want true, yes, 1, false, no or 0)", raw)
}

// BoolConvert normalises a boolean environment value for a pflag bool flag.
func BoolConvert(raw string) (string, error) {
	b, err := ParseBool(raw)
	if err != nil {
		return "", err
	}
	return strconv.FormatBool(b), nil
}

// DebugConvert turns ORBIT_CONTROLLER_DEBUG into a log level: true → debug, false → unchanged.
func DebugConvert(raw string) (string, error) {
	b, err := ParseBool(raw)
	if err != nil {
		return "", err
	}
	if b {
		return "debug", nil
	}
	return "", nil
}

// EnvKeys lists the environment keys of a binding set, sorted, for --help.
func EnvKeys(bindings []Binding) []string {
	keys := make([]string, 0, len(bindings))
	for _, b := range bindings {
		keys = append(keys, fmt.Sprintf("%s (--%s)", b.Env, b.Flag))
	}
	sort.Strings(keys)
	return keys
}
