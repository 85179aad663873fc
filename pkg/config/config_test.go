package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/orbit-workbench/orbit-controller/pkg/config"
)

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "YES": true, "1": true, "on": true, "false": false, "no": false, "0": false, " False ": false} {
		got, err := config.ParseBool(in)
		if err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := config.ParseBool("maybe"); err == nil {
		t.Error("ParseBool(maybe) accepted")
	}
}

func TestApply(t *testing.T) {
	cases := []struct {
		name      string
		args      []string
		env       map[string]string
		wantLevel string
		wantN     int
		wantErr   string
	}{
		{name: "env sets unset flags", env: map[string]string{"N": "5", "DEBUG": "true"}, wantLevel: "debug", wantN: 5},
		{name: "flag wins", args: []string{"--n=2", "--log-level=warn"}, env: map[string]string{"N": "5", "DEBUG": "true"}, wantLevel: "warn", wantN: 2},
		{name: "debug false keeps default", env: map[string]string{"DEBUG": "0"}, wantLevel: "info", wantN: 1},
		{name: "blank env ignored", env: map[string]string{"N": "  "}, wantLevel: "info", wantN: 1},
		{name: "bad int names key", env: map[string]string{"N": "x"}, wantErr: "N: invalid value"},
		{name: "bad bool names key", env: map[string]string{"DEBUG": "x"}, wantErr: "DEBUG: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			level := fs.String("log-level", "info", "")
			n := fs.Int("n", 1, "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			_, err := config.Apply(fs, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }, []config.Binding{
				{Env: "N", Flag: "n"},
				{Env: "DEBUG", Flag: "log-level", Convert: config.DebugConvert},
			})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *level != tc.wantLevel || *n != tc.wantN {
				t.Errorf("level %s n %d, want %s %d", *level, *n, tc.wantLevel, tc.wantN)
			}
		})
	}
}

func TestNameSource(t *testing.T) {
	from := map[string]string{"workers": "POD_DEFAULTS_WATCHER_WORKERS"}
	cases := map[string]string{
		"--workers: 0 is out of range":   "POD_DEFAULTS_WATCHER_WORKERS (--workers): 0 is out of range",
		"--namespace: must not be empty": "--namespace: must not be empty",
		"something else":                 "something else",
	}
	for in, want := range cases {
		if got := config.NameSource(errors.New(in), from).Error(); got != want {
			t.Errorf("NameSource(%q) = %q, want %q", in, got, want)
		}
	}
}
