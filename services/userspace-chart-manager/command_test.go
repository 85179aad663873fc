package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
)

func execute(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Execute(context.Background(), command("test"), cli.IO{
		Args:   args,
		Env:    func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Stdout: &stdout, Stderr: &stderr,
	})
	return code, stdout.String(), stderr.String()
}

func TestHelpListsFlagsWithDefaults(t *testing.T) {
	code, out, _ := execute(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, want := range []string{
		"--workers int", "(default 8)", "--leader-elect", "--resync-period", "--plain-http-registries",
		"--s3-endpoint-url", "--s3-path-style", "--profile-wait-timeout", "--kubeconfig", "USERSPACE_CHART_MANAGER_WORKERS (--workers)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q:\n%s", want, out)
		}
	}
}

func TestInvalidConfigurationExitsWithOneLine(t *testing.T) {
	cases := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{args: []string{"--workers", "0"}, want: "--workers"},
		{env: map[string]string{"USERSPACE_CHART_MANAGER_WORKERS": "many"}, want: "USERSPACE_CHART_MANAGER_WORKERS"},
		{env: map[string]string{"USERSPACE_CHART_MANAGER_WORKERS": "0"}, want: "--workers"},
		{args: []string{"--resync-period", "0s"}, want: "--resync-period"},
	}
	for _, tc := range cases {
		code, _, stderr := execute(t, tc.env, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v %v: exit %d, stderr %q; want 2 and one line naming %s", tc.env, tc.args, code, stderr, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	if code, out, _ := execute(t, nil, "--version"); code != 0 || strings.TrimSpace(out) != "userspace-chart-manager test" {
		t.Errorf("--version: exit %d, %q", code, out)
	}
}
