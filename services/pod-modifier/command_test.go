package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
)

func TestCommandFlagsAndConfiguration(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		want     string
	}{
		{"help lists the webhook and certificate flags", []string{"--help"}, nil, 0, "--cert-mode"},
		{"help lists the listen address", []string{"--help"}, nil, 0, "--listen-address"},
		{"help lists the subcommands", []string{"--help"}, nil, 0, "pod-modifier preview"},
		{"version", []string{"--version"}, nil, 0, "pod-modifier test"},
		{"bad cert mode", []string{"--cert-mode=magic"}, nil, 2, "--cert-mode: unknown mode"},
		{"files mode needs files", []string{"--cert-mode=files"}, nil, 2, "--tls-cert-file and --tls-key-file are required"},
		{"bad listen address", []string{"--listen-address=8443"}, nil, 2, "--listen-address"},
		{"bad verbosity from env names the key", nil, map[string]string{"ORBIT_CONTROLLER_LOG_VERBOSITY": "9"}, 2, "ORBIT_CONTROLLER_LOG_VERBOSITY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := cli.Execute(t.Context(), command("test"), cli.IO{
				Args: tc.args, Stdout: &out, Stderr: &errOut,
				Env: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok },
			})
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d: %s%s", code, tc.wantCode, out.String(), errOut.String())
			}
			if !strings.Contains(out.String()+errOut.String(), tc.want) {
				t.Errorf("output lacks %q:\n%s%s", tc.want, out.String(), errOut.String())
			}
		})
	}
}
