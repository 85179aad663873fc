package app_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/app"
	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/awstest"
)

// The copy backend through the controller: a real multi-layer image moves between two
// loopback registries, digest preserved, the status ends Complete after one attempt and the
// state key is written.
func TestCopyBackendReplicates(t *testing.T) {
	ns := env.Namespace(t, "orbit", nil)
	src, dst := newRegistry(t, nil), newRegistry(t, nil)
	source := src + "/team/app:1.0"
	want := pushRandom(t, source, 3)
	destination := dst + "/orbit-dev/127.0.0.1-" + strings.Split(src, ":")[1] + "/team/app:1.0"

	r := startReplicator(t, copyOptions(), ns.Name)
	irs := replications(t, ns.Name)
	createReplication(t, irs, "app", source, destination)

	ir := waitFor(t, irs, "app", 20*time.Second, phase(orbitv1.PhaseComplete))
	if ir.Status.Attempt != 1 || ir.Status.LastTransitionTime == nil || !strings.Contains(ir.Status.Message, want.String()) {
		t.Errorf("status %+v: want attempt 1, a transition time and the digest copied", ir.Status)
	}
	got, err := headDigest(t.Context(), destination)
	if err != nil {
		t.Fatalf("mirror lacks the image: %v", err)
	}
	if got != want {
		t.Errorf("mirror digest %s, source %s", got, want)
	}
	// Known Complete in memory: a later change of the resource is handled without asking the
	// mirror again.
	checks := r.metric(t, "orbit_image_replicator_mirror_checks_total")
	reconciles := r.metric(t, "orbit_image_replicator_reconcile_total")
	if _, err := irs.Patch(t.Context(), "app", types.MergePatchType, []byte(`{"metadata":{"labels":{"touched":"yes"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func(context.Context) (bool, string) {
		return r.metric(t, "orbit_image_replicator_reconcile_total") > reconciles, "change not reconciled"
	})
	if got := r.metric(t, "orbit_image_replicator_mirror_checks_total"); got != checks {
		t.Errorf("mirror checked again (%v → %v checks) for an image known Complete", checks, got)
	}
	testenv.Eventually(t, 5*time.Second, func(ctx context.Context) (bool, string) {
		cm, err := env.Clientset.CoreV1().ConfigMaps(ns.Name).Get(ctx, controller.StateConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s, err := controller.ReadState(cm, controller.StateKeyImageReplications)
		return err == nil && s.LastResourceVersion != "", "state key not written"
	})
}

// An image that cannot be pulled is tried --max-attempts times, backing off between them,
// and ends Failed with the registry's reason.
func TestUnpullableImageFails(t *testing.T) {
	ns := env.Namespace(t, "orbit", nil)
	src, dst := newRegistry(t, nil), newRegistry(t, nil)
	startReplicator(t, copyOptions(), ns.Name)
	irs := replications(t, ns.Name)
	createReplication(t, irs, "missing", src+"/team/missing:1", dst+"/orbit-dev/team/missing:1")

	ir := waitFor(t, irs, "missing", 20*time.Second, phase(orbitv1.PhaseFailed))
	if ir.Status.Attempt != 2 {
		t.Errorf("attempt %d, want 2 (--max-attempts)", ir.Status.Attempt)
	}
	if !strings.Contains(ir.Status.Message, "giving up") || !strings.Contains(ir.Status.Message, "NAME_UNKNOWN") {
		t.Errorf("message %q: want the reason", ir.Status.Message)
	}
	// Failed after the last attempt stays Failed: no further attempt.
	time.Sleep(500 * time.Millisecond)
	if again, err := irs.Get(t.Context(), "missing"); err != nil || again.Status.Attempt != 2 || again.Status.Phase != orbitv1.PhaseFailed {
		t.Errorf("after giving up: %+v, %v", again.Status, err)
	}
}

// A controller stopped while a copy is in flight leaves the resource Replicating; the next
// one resumes that attempt (not counting a new one) and completes it.
func TestRestartResumesInterruptedCopy(t *testing.T) {
	ns := env.Namespace(t, "orbit", nil)
	release := make(chan struct{})
	var blocked atomic.Int32
	src := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				blocked.Add(1)
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	})
	dst := newRegistry(t, nil)
	source, destination := src+"/team/slow:1", dst+"/orbit-dev/team/slow:1"
	want := pushRandom(t, source, 3)
	irs := replications(t, ns.Name)
	createReplication(t, irs, "slow", source, destination)

	first := startReplicator(t, copyOptions(), ns.Name)
	waitFor(t, irs, "slow", 20*time.Second, func(st orbitv1.ImageReplicationStatus) bool {
		return st.Phase == orbitv1.PhaseReplicating && blocked.Load() > 0
	})
	first.stop(t)
	ir, err := irs.Get(t.Context(), "slow")
	if err != nil {
		t.Fatal(err)
	}
	if ir.Status.Phase != orbitv1.PhaseReplicating || ir.Status.Attempt != 1 {
		t.Fatalf("after the stop: %+v, want Replicating attempt 1", ir.Status)
	}

	close(release)
	startReplicator(t, copyOptions(), ns.Name)
	ir = waitFor(t, irs, "slow", 20*time.Second, phase(orbitv1.PhaseComplete))
	if ir.Status.Attempt != 1 {
		t.Errorf("completed at attempt %d, want the resumed attempt 1", ir.Status.Attempt)
	}
	if got, err := headDigest(t.Context(), destination); err != nil || got != want {
		t.Errorf("mirror digest %s (%v), want %s", got, err, want)
	}
}

// codebuildServer is a loopback CodeBuild and ECR: builds are answered by status(n), n the
// number of BatchGetBuilds calls for that build; StartBuild by start(n), n its call count.
type codebuildServer struct {
	*awstest.Server
	mu       sync.Mutex
	starts   int
	polls    map[string]int
	start    func(n int) (int, any)
	status   func(id string, n int) string
	inMirror atomic.Bool
}

const (
	targetStart    = "CodeBuild_20161006.StartBuild"
	targetGet      = "CodeBuild_20161006.BatchGetBuilds"
	targetDescribe = "AmazonEC2ContainerRegistry_V20150921.DescribeImages"
	mirrorHost     = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
)

func newCodeBuildServer(t *testing.T) *codebuildServer {
	s := &codebuildServer{Server: awstest.New(t), polls: map[string]int{}}
	s.Handle(targetStart, func(map[string]any) (int, any) {
		s.mu.Lock()
		s.starts++
		n := s.starts
		s.mu.Unlock()
		if s.start != nil {
			if code, body := s.start(n); code != 0 {
				return code, body
			}
		}
		return http.StatusOK, map[string]any{"build": map[string]any{"id": buildID(n), "buildStatus": "IN_PROGRESS"}}
	})
	s.Handle(targetGet, func(body map[string]any) (int, any) {
		ids, _ := body["ids"].([]any)
		var builds []any
		for _, raw := range ids {
			id, _ := raw.(string)
			s.mu.Lock()
			s.polls[id]++
			n := s.polls[id]
			s.mu.Unlock()
			st := s.status(id, n)
			b := map[string]any{"id": id, "buildStatus": st}
			if st == "FAILED" || st == "TIMED_OUT" {
				b["phases"] = []any{map[string]any{"phaseType": "BUILD", "phaseStatus": st,
					"contexts": []any{map[string]any{"message": "docker pull: manifest unknown"}}}}
			}
			if st == "SUCCEEDED" {
				s.inMirror.Store(true)
			}
			builds = append(builds, b)
		}
		return http.StatusOK, map[string]any{"builds": builds}
	})
	s.Handle(targetDescribe, func(map[string]any) (int, any) {
		if s.inMirror.Load() {
			return http.StatusOK, map[string]any{"imageDetails": []any{map[string]any{"imageDigest": "sha256:" + strings.Repeat("a", 64)}}}
		}
		return awstest.Error("ImageNotFoundException", "not found")
	})
	return s
}

func buildID(n int) string {
	return "orbit-image-replication:" + strings.Repeat("0", 3) + string(rune('0'+n))
}

func (s *codebuildServer) startCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

func codebuildOptions(s *codebuildServer) app.Options {
	opts := copyOptions()
	opts.Backend = app.BackendCodeBuild
	opts.CodeBuildProject = "orbit-image-replication"
	opts.RepoPrefix = "orbit-dev"
	cfg := s.Config()
	cfg.BaseEndpoint = aws.String(s.URL)
	opts.AWSConfig = &cfg
	return opts
}

// The CodeBuild backend through the controller against a loopback AWS endpoint.
func TestCodeBuildBackend(t *testing.T) {
	const source, destination = "nginx:1.25", mirrorHost + "/orbit-dev/nginx:1.25"

	t.Run("succeeded build completes", func(t *testing.T) {
		s := newCodeBuildServer(t)
		s.status = func(_ string, n int) string {
			if n < 3 {
				return "IN_PROGRESS"
			}
			return "SUCCEEDED"
		}
		ns := env.Namespace(t, "orbit", nil)
		startReplicator(t, codebuildOptions(s), ns.Name)
		irs := replications(t, ns.Name)
		createReplication(t, irs, "nginx", source, destination)
		ir := waitFor(t, irs, "nginx", 20*time.Second, phase(orbitv1.PhaseComplete))
		if ir.Status.Attempt != 1 || ir.Status.BuildID != buildID(1) || s.startCount() != 1 {
			t.Errorf("status %+v after %d builds: want attempt 1 of build %s", ir.Status, s.startCount(), buildID(1))
		}
		spec := s.Calls(targetStart)[0].Body["buildspecOverride"].(string)
		if !strings.Contains(spec, destination) || !strings.Contains(spec, "Key=Env,Value=$ENV_TAG") {
			t.Errorf("buildspec lacks the destination or the Env tag:\n%s", spec)
		}
	})

	t.Run("failed and timed-out builds are retried then Failed", func(t *testing.T) {
		s := newCodeBuildServer(t)
		s.status = func(id string, _ int) string {
			if id == buildID(1) {
				return "FAILED"
			}
			return "TIMED_OUT"
		}
		ns := env.Namespace(t, "orbit", nil)
		startReplicator(t, codebuildOptions(s), ns.Name)
		irs := replications(t, ns.Name)
		createReplication(t, irs, "nginx", source, destination)
		ir := waitFor(t, irs, "nginx", 20*time.Second, phase(orbitv1.PhaseFailed))
		if ir.Status.Attempt != 2 || s.startCount() != 2 {
			t.Errorf("status %+v after %d builds: want Failed after 2 attempts", ir.Status, s.startCount())
		}
		if !strings.Contains(ir.Status.Message, "TIMED_OUT") || !strings.Contains(ir.Status.Message, "manifest unknown") {
			t.Errorf("message %q: want the last build's status and reason", ir.Status.Message)
		}
		time.Sleep(300 * time.Millisecond)
		if n := s.startCount(); n != 2 {
			t.Errorf("%d builds after giving up", n)
		}
	})

	t.Run("throttling is retried without counting an attempt", func(t *testing.T) {
		s := newCodeBuildServer(t)
		s.start = func(n int) (int, any) {
			if n <= 3 {
				return awstest.Error("ThrottlingException", "Rate exceeded")
			}
			return 0, nil
		}
		s.status = func(string, int) string { return "SUCCEEDED" }
		ns := env.Namespace(t, "orbit", nil)
		startReplicator(t, codebuildOptions(s), ns.Name)
		irs := replications(t, ns.Name)
		createReplication(t, irs, "nginx", source, destination)
		ir := waitFor(t, irs, "nginx", 20*time.Second, phase(orbitv1.PhaseComplete))
		if ir.Status.Attempt != 1 || s.startCount() != 4 || ir.Status.BuildID != buildID(4) {
			t.Errorf("status %+v after %d StartBuild calls: want attempt 1 with the fourth call's build", ir.Status, s.startCount())
		}
	})

	t.Run("restart resumes polling the recorded build", func(t *testing.T) {
		s := newCodeBuildServer(t)
		var done atomic.Bool
		s.status = func(string, int) string {
			if done.Load() {
				return "SUCCEEDED"
			}
			return "IN_PROGRESS"
		}
		ns := env.Namespace(t, "orbit", nil)
		irs := replications(t, ns.Name)
		createReplication(t, irs, "nginx", source, destination)
		first := startReplicator(t, codebuildOptions(s), ns.Name)
		waitFor(t, irs, "nginx", 20*time.Second, func(st orbitv1.ImageReplicationStatus) bool {
			return st.Phase == orbitv1.PhaseReplicating && st.BuildID == buildID(1)
		})
		first.stop(t)
		done.Store(true)
		startReplicator(t, codebuildOptions(s), ns.Name)
		ir := waitFor(t, irs, "nginx", 20*time.Second, phase(orbitv1.PhaseComplete))
		if ir.Status.Attempt != 1 || ir.Status.BuildID != buildID(1) || s.startCount() != 1 {
			t.Errorf("status %+v after %d builds: want the first build completed as attempt 1", ir.Status, s.startCount())
		}
	})
}

// --inventory replicates every line once, prints one summary line and fails naming the
// images that did not make it.
func TestInventoryMode(t *testing.T) {
	src, dst := newRegistry(t, nil), newRegistry(t, nil)
	srcPort := strings.Split(src, ":")[1]
	a := pushRandom(t, src+"/team/a:1", 2)
	b := pushRandom(t, src+"/team/b:1", 2)
	file := filepath.Join(t.TempDir(), "images.txt")
	content := "# pre-seed\n" + src + "/team/a:1\n" + src + "/team/b:1 " + dst + "/custom/b:1  # explicit\n" +
		src + "/team/a:1\n" + src + "/team/missing:1\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := copyOptions()
	opts.Inventory, opts.RepoHost, opts.RepoPrefix = file, dst, "orbit-dev"
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	rt := runtimeFor(t, "orbit-system")
	var out bytes.Buffer
	rt.Stdout = &out
	err := app.Run(t.Context(), rt, opts)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Run = %v, want the failure naming the missing image", err)
	}
	if got := strings.TrimSpace(out.String()); got != "4 images: 2 replicated, 0 already present, 0 not mirrored, 1 duplicate, 1 failed" {
		t.Errorf("summary %q", got)
	}
	for ref, want := range map[string]string{
		dst + "/orbit-dev/127.0.0.1-" + srcPort + "/team/a:1": a.String(),
		dst + "/custom/b:1": b.String(),
	} {
		if got, err := headDigest(t.Context(), ref); err != nil || got.String() != want {
			t.Errorf("%s: digest %s (%v), want %s", ref, got, err, want)
		}
	}

	// All present now: a second run succeeds without copying.
	if err := os.WriteFile(file, []byte(src+"/team/a:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := app.Run(t.Context(), rt, opts); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if got := strings.TrimSpace(out.String()); got != "1 images: 0 replicated, 1 already present, 0 not mirrored, 0 duplicate, 0 failed" {
		t.Errorf("summary %q", got)
	}
}

// --docker-config-secret: a source registry that refuses anonymous pulls is copied from with
// the Secret's credentials, and a rotated password applies without a restart.
func TestSourceCredentialsFromSecret(t *testing.T) {
	ns := env.Namespace(t, "orbit", nil)
	var password atomic.Value
	password.Store("")
	src := newRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			want := password.Load().(string)
			if u, p, ok := r.BasicAuth(); want != "" && (!ok || u != "puller" || p != want) {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	dst := newRegistry(t, nil)
	a := pushRandom(t, src+"/team/a:1", 2)
	b := pushRandom(t, src+"/team/b:1", 2)
	password.Store("first")

	secrets := env.Clientset.CoreV1().Secrets(ns.Name)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "registry-credentials"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig(src, "puller", "first")},
	}
	if _, err := secrets.Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	opts := copyOptions()
	opts.DockerConfigSecrets = []string{secret.Name}
	opts.MaxAttempts = 5 // a copy racing the Secret's update event may need a second attempt
	startReplicator(t, opts, ns.Name)
	irs := replications(t, ns.Name)

	createReplication(t, irs, "a", src+"/team/a:1", dst+"/orbit-dev/team/a:1")
	waitFor(t, irs, "a", 20*time.Second, phase(orbitv1.PhaseComplete))
	if got, err := headDigest(t.Context(), dst+"/orbit-dev/team/a:1"); err != nil || got != a {
		t.Errorf("mirror digest %s (%v), want %s", got, err, a)
	}

	// Rotate: the registry wants a new password, the Secret is updated, the next copy uses it.
	password.Store("second")
	secret.Data[corev1.DockerConfigJsonKey] = dockerConfig(src, "puller", "second")
	if _, err := secrets.Update(t.Context(), secret, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	createReplication(t, irs, "b", src+"/team/b:1", dst+"/orbit-dev/team/b:1")
	ir := waitFor(t, irs, "b", 20*time.Second, func(st orbitv1.ImageReplicationStatus) bool {
		return st.Phase == orbitv1.PhaseComplete || st.Phase == orbitv1.PhaseFailed
	})
	if ir.Status.Phase != orbitv1.PhaseComplete {
		t.Fatalf("after rotation: %+v", ir.Status)
	}
	if got, err := headDigest(t.Context(), dst+"/orbit-dev/team/b:1"); err != nil || got != b {
		t.Errorf("mirror digest %s (%v), want %s", got, err, b)
	}
}

func dockerConfig(registry, user, password string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return []byte(`{"auths":{"` + registry + `":{"auth":"` + auth + `"}}}`)
}
