// Package rbac proves the chart's RBAC is what the services need, no more and no less: it
// plays the platform's login-to-logout scenario (e2e/platform) with every service running
// as the ServiceAccount the chart gives it — the control plane's admin impersonating it,
// bound only by the chart's rendered ServiceAccounts, (Cluster)Roles and (Cluster)RoleBindings
// — and with the arguments the chart renders for its container. The scenario passes; with one
// verb removed it fails at the step that verb serves.
package rbac

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orbit-workbench/orbit-controller/e2e/internal/repo"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
)

// services are the six binaries the platform runs.
var services = []string{"userspace-chart-manager", "podsettings-watcher", "poddefaults-watcher", "pod-modifier", "image-updater", "image-replicator"}

// binDir holds the services built from the working tree for this package's run, so the test
// never runs stale binaries from bin/.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "orbit-rbac-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "rbac: temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "rbac: repository root: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, svc := range services {
		if err := repo.Build(ctx, root, svc, filepath.Join(dir, svc)); err != nil {
			fmt.Fprintf(os.Stderr, "rbac: %v\n", err)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}
