package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/config"
	"github.com/orbit-workbench/orbit-controller/services/image-updater/internal/app"
)

const host = "123456789012.dkr.ecr.us-west-2.amazonaws.com"

func execute(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli.Execute(context.Background(), command("test"), cli.IO{
		Args: args, Stdout: &stdout, Stderr: &stderr,
		Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
	})
	return code, stdout.String(), stderr.String()
}

func TestHelpListsFlagsAndEnvironment(t *testing.T) {
	code, out, _ := execute(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, want := range []string{
		"--listen-address", ":8443", "--cert-mode", "--repo-host", "--repo-prefix", "--replication-backend",
		"--replicate-external-repos", "--policy", "--exclude-namespaces", "--exclude-images",
		"IMAGE_REPLICATIONS_REPO_HOST", "IMAGE_REPLICATIONS_REPO_PREFIX", "IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

// Bad configuration exits 2 with one line naming the key, before touching any cluster.
func TestInvalidConfigurationNamesTheKey(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "no repo host", want: "--repo-host"},
		{name: "bad repo host", args: []string{"--repo-host", "Not A Host"}, want: "--repo-host"},
		{name: "bad prefix", args: []string{"--repo-host", host, "--repo-prefix", "UPPER"}, want: "--repo-prefix"},
		{name: "bad backend", args: []string{"--repo-host", host, "--replication-backend", "docker"}, want: "--replication-backend"},
		{name: "bad policy", args: []string{"--repo-host", host, "--policy", "sometimes"}, want: "--policy"},
		{name: "bad exclusion", args: []string{"--repo-host", host, "--exclude-images", "re:("}, want: "--exclude"},
		{name: "bad external repos env", env: map[string]string{"IMAGE_REPLICATIONS_REPO_HOST": host, "IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS": "maybe"},
			want: "IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS"},
		{name: "bad repo host from the environment", env: map[string]string{"IMAGE_REPLICATIONS_REPO_HOST": "Not A Host"},
			want: "IMAGE_REPLICATIONS_REPO_HOST (--repo-host)"},
		{name: "files mode without files", args: []string{"--repo-host", host, "--cert-mode", "files"}, want: "--tls-cert-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := execute(t, tt.env, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q: want one line naming %s", stderr, tt.want)
			}
		})
	}
}

func TestEnvironmentAndFlags(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		host     string
		prefix   string
		external bool
	}{
		{name: "environment", env: map[string]string{
			"IMAGE_REPLICATIONS_REPO_HOST": host, "IMAGE_REPLICATIONS_REPO_PREFIX": "orbit-dev",
			"IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS": "yes",
		}, host: host, prefix: "orbit-dev", external: true},
		{name: "env 1", env: map[string]string{"IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS": "1"}, external: true},
		{name: "env True", env: map[string]string{"IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS": "True"}, external: true},
		{name: "env false", env: map[string]string{"IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS": "false"}},
		{name: "bare flag", args: []string{"--replicate-external-repos"}, external: true},
		{name: "flag wins", env: map[string]string{"IMAGE_REPLICATIONS_REPO_HOST": "env.example.com", "IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS": "yes"},
			args: []string{"--repo-host", host, "--replicate-external-repos=false"}, host: host},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := app.DefaultOptions()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			opts.BindFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			if _, err := config.Apply(fs, lookup, app.Env()); err != nil {
				t.Fatal(err)
			}
			if opts.RepoHost != tt.host || opts.RepoPrefix != tt.prefix || opts.ReplicateExternalRepos != tt.external {
				t.Errorf("host %q prefix %q external %v; want %q %q %v", opts.RepoHost, opts.RepoPrefix, opts.ReplicateExternalRepos, tt.host, tt.prefix, tt.external)
			}
		})
	}
}
