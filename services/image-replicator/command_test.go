package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/orbit-workbench/orbit-controller/pkg/cli"
	"github.com/orbit-workbench/orbit-controller/pkg/config"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/app"
)

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
		"--workers", "--leader-elect", "--backend", "--codebuild-project", "--codebuild-timeout", "--codebuild-image",
		"--max-attempts", "--inventory", "--repo-prefix", "--repo-host", "--docker-config-secret", "--insecure-registries",
		"IMAGE_REPLICATIONS_WATCHER_WORKERS", "IMAGE_REPLICATIONS_CODEBUILD_PROJECT", "IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT",
		"ORBIT_CODEBUILD_IMAGE", "MAX_REPLICATION_ATTEMPTS", "IMAGE_REPLICATIONS_REPO_PREFIX",
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
		{name: "codebuild without project", want: "IMAGE_REPLICATIONS_CODEBUILD_PROJECT"},
		{name: "bad backend", args: []string{"--backend", "docker"}, want: "--backend"},
		{name: "timeout out of range", env: map[string]string{"IMAGE_REPLICATIONS_CODEBUILD_PROJECT": "p", "IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT": "3"},
			want: "IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT"},
		{name: "timeout not a number", env: map[string]string{"IMAGE_REPLICATIONS_CODEBUILD_PROJECT": "p", "IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT": "half"},
			want: "IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT"},
		{name: "zero attempts", env: map[string]string{"MAX_REPLICATION_ATTEMPTS": "0"}, args: []string{"--backend", "copy"}, want: "MAX_REPLICATION_ATTEMPTS"},
		{name: "bad workers", env: map[string]string{"IMAGE_REPLICATIONS_WATCHER_WORKERS": "0"}, args: []string{"--backend", "copy"}, want: "--workers"},
		{name: "missing inventory", args: []string{"--backend", "copy", "--inventory", "/does/not/exist"}, want: "--inventory"},
		{name: "bad repo host", args: []string{"--backend", "copy", "--repo-host", "Not A Host"}, want: "--repo-host"},
		{name: "bad external repos env", env: map[string]string{"IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS": "maybe"}, args: []string{"--backend", "copy"},
			want: "IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS"},
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
	opts := app.DefaultOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	opts.BindFlags(fs)
	if err := fs.Parse([]string{"--max-attempts", "7"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"IMAGE_REPLICATIONS_WATCHER_WORKERS":          "9",
		"IMAGE_REPLICATIONS_CODEBUILD_PROJECT":        "orbit-images",
		"IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT":        "45",
		"ORBIT_CODEBUILD_IMAGE":                       "aws/codebuild/standard:7.0",
		"MAX_REPLICATION_ATTEMPTS":                    "5",
		"IMAGE_REPLICATIONS_REPO_PREFIX":              "orbit-dev",
		"IMAGE_REPLICATIONS_REPO_HOST":                "123456789012.dkr.ecr.us-west-2.amazonaws.com",
		"IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS": "yes",
	}
	if _, err := config.Apply(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, app.Env()); err != nil {
		t.Fatal(err)
	}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	if opts.Watcher.Workers != 9 || opts.CodeBuildProject != "orbit-images" || opts.CodeBuildTimeout != 45 ||
		opts.CodeBuildImage != "aws/codebuild/standard:7.0" || opts.RepoPrefix != "orbit-dev" ||
		opts.RepoHost != "123456789012.dkr.ecr.us-west-2.amazonaws.com" || !opts.ReplicateExternalRepos {
		t.Errorf("options from the environment: %+v", opts)
	}
	if opts.MaxAttempts != 7 {
		t.Errorf("--max-attempts 7 lost to MAX_REPLICATION_ATTEMPTS: %d", opts.MaxAttempts)
	}
	if opts.Backend != app.BackendCodeBuild || opts.CodeBuildTimeout == 0 {
		t.Errorf("defaults: backend %q", opts.Backend)
	}
}

// --inventory runs without a cluster: one summary line, exit 0 when all is well.
func TestInventoryNeedsNoCluster(t *testing.T) {
	file := filepath.Join(t.TempDir(), "images.txt")
	if err := os.WriteFile(file, []byte("# nothing to do\n123456789012.dkr.ecr.us-west-2.amazonaws.com/orbit-dev/foo:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := execute(t, nil, "--backend", "copy", "--inventory", file, "--http-address", "127.0.0.1:0",
		"--repo-host", "123456789012.dkr.ecr.us-west-2.amazonaws.com", "--kubeconfig", "/does/not/exist")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := strings.TrimSpace(out); got != "1 images: 0 replicated, 0 already present, 1 not mirrored, 0 duplicate, 0 failed" {
		t.Errorf("stdout %q", got)
	}
}
