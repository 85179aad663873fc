package chart

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/orbit-workbench/orbit-controller/e2e/internal/render"
	"github.com/orbit-workbench/orbit-controller/e2e/internal/repo"
)

// serviceEnv: the orbit-controller-config keys each service must bind (SPEC §2 and §6).
var serviceEnv = map[string][]string{
	"userspace-chart-manager": {"USERSPACE_CHART_MANAGER_WORKERS"},
	"pod-modifier":            nil,
	"podsettings-watcher":     {"POD_SETTINGS_WATCHER_WORKERS"},
	"poddefaults-watcher":     {"POD_DEFAULTS_WATCHER_WORKERS"},
	"image-updater":           {"IMAGE_REPLICATIONS_REPO_HOST", "IMAGE_REPLICATIONS_REPO_PREFIX", "IMAGE_REPLICATIONS_REPLICATE_EXTERNAL_REPOS"},
	"image-replicator": {"IMAGE_REPLICATIONS_WATCHER_WORKERS", "IMAGE_REPLICATIONS_REPO_HOST", "IMAGE_REPLICATIONS_REPO_PREFIX",
		"IMAGE_REPLICATIONS_CODEBUILD_PROJECT", "IMAGE_REPLICATIONS_CODEBUILD_TIMEOUT", "ORBIT_CODEBUILD_IMAGE", "MAX_REPLICATION_ATTEMPTS"},
}

var commonEnv = []string{"ORBIT_CONTROLLER_DEBUG", "ORBIT_CONTROLLER_LOG_VERBOSITY"}

// TestChartArgsAcceptedByServices builds every service as the image does and runs it with the
// exact arguments the chart gives each of its containers (every certificate mode, the
// inventory init container, per-service log overrides) followed by --help: pflag stops at the
// first flag it does not know, so exit 0 proves the binary accepts them all. The help's
// environment section must list the configuration keys the service reads from
// orbit-controller-config. A service that does not build fails here.
func TestChartArgsAcceptedByServices(t *testing.T) {
	overrides := `
pod-modifier: {logLevel: debug, logVerbosity: 2}
image-replicator: {inventory: {images: [nginx]}}
`
	variants := map[string]*render.Result{
		"self-signed":  renderChart(t, allEnabled, overrides),
		"csr":          renderChart(t, allEnabled, "global: {certificates: {mode: csr}}"),
		"cert-manager": renderChart(t, allEnabled, "global: {certificates: {mode: cert-manager}}"),
	}
	type run struct {
		variant, container string
		args               []string
	}
	runs := map[string][]run{}
	for variant, r := range variants {
		for _, o := range r.All("Deployment") {
			spec := deployment(t, r, o.GetName()).Spec.Template.Spec
			for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
				svc := serviceOf(c.Image)
				runs[svc] = append(runs[svc], run{variant, c.Name, c.Args})
			}
		}
	}
	root := repo.Root(t)
	bin := t.TempDir()
	for _, svc := range repo.Services(t) {
		t.Run(svc, func(t *testing.T) {
			if len(runs[svc]) == 0 {
				t.Fatalf("the chart runs no container of %s", svc)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
			defer cancel()
			exe := filepath.Join(bin, svc)
			if err := repo.Build(ctx, root, svc, exe); err != nil {
				t.Fatal(err)
			}
			for _, r := range runs[svc] {
				out, err := runHelp(ctx, exe, r.args)
				if err != nil {
					t.Errorf("%s (%s, container %s) rejects the chart's arguments %q: %v\n%s", svc, r.variant, r.container, r.args, err, out)
					continue
				}
				for _, key := range append(append([]string{}, commonEnv...), serviceEnv[svc]...) {
					if !strings.Contains(out, key+" (--") {
						t.Errorf("%s --help lists no environment key %s (orbit-controller-config holds it for this service)", svc, key)
					}
				}
			}
		})
	}
}

func serviceOf(image string) string {
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	return name
}

func runHelp(ctx context.Context, exe string, args []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, append(append([]string{}, args...), "--help")...)
	cmd.Env = []string{"HOME=" + filepath.Dir(exe)}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
