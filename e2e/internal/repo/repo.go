// Package repo finds the repository's parts the e2e tests look at: its root, the chart, the
// services, and builds a service's binary the way the Dockerfile does.
package repo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
)

// Root is the repository's root (where go.work lives).
func Root(t testing.TB) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return root
}

// ChartDir is the umbrella chart.
func ChartDir(t testing.TB) string {
	return filepath.Join(Root(t), "charts", "orbit-controller")
}

// Services lists the service modules: the folders under services/ holding a go.mod.
func Services(t testing.TB) []string {
	t.Helper()
	dir := filepath.Join(Root(t), "services")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list services: %v", err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "go.mod")); err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		t.Fatalf("no service modules under %s", dir)
	}
	return out
}

// Build builds ./services/<service> from the repository root as the Dockerfile does (static,
// -trimpath, workspace mode) into out. It returns the go command's output on failure. The
// tests run with GOWORK=off (the e2e module stands alone), so the repository's go.work is
// named explicitly.
func Build(ctx context.Context, root, service, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-X main.version=e2e", "-o", out, "./services/"+service)
	cmd.Dir = root
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOWORK=") || strings.HasPrefix(kv, "CGO_ENABLED=") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "GOWORK="+filepath.Join(root, "go.work"), "CGO_ENABLED=0")
	output, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build ./services/%s: %w\n%s", service, err, strings.TrimSpace(string(output)))
	}
	return nil
}
