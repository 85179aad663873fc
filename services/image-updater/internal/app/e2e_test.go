package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/mirror"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
	"github.com/orbit-workbench/orbit-controller/services/image-updater/internal/app"
	"github.com/orbit-workbench/orbit-controller/services/image-updater/internal/handler"
)

const prefix = mirrorHost + "/orbit-dev/"

func options() app.Options {
	opts := app.DefaultOptions()
	opts.RepoHost, opts.RepoPrefix = mirrorHost, "orbit-dev"
	return opts
}

func orbitClient(t *testing.T) *orbitclient.Client {
	t.Helper()
	c, err := orbitclient.New(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The API server calls the image-updater over TLS: every container and init container of
// a Pod is rewritten with its original recorded, 20 Pods of one Deployment's images make one
// ImageReplication per image, a dry run is rewritten but creates nothing, an excluded
// namespace is left alone, and an update that changes an image is rewritten too.
func TestWebhookRewritesPodsThroughAPIServer(t *testing.T) {
	ctx := t.Context()
	orbitNS := env.Namespace(t, "orbit", nil)
	label := map[string]string{"orbit-test/image-updater": orbitNS.Name}
	team := env.Namespace(t, "team", label)
	excluded := env.Namespace(t, "excluded", label)

	opts := options()
	opts.ExcludeNamespaces = []string{excluded.Name}
	u := startUpdater(t, opts, orbitNS.Name, env.Config)
	u.register(t, label, team.Name, "busybox")
	irs := orbitClient(t).ImageReplications(orbitNS.Name)

	// 20 Pods of one Deployment, created at once.
	pods := env.Clientset.CoreV1().Pods(team.Name)
	const replicas = 20
	var wg sync.WaitGroup
	created := make([]*corev1.Pod, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Go(func() {
			p := newPod(fmt.Sprintf("web-%02d", i), "nginx:1.25")
			p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox:1.36"}}
			created[i], errs[i] = pods.Create(ctx, p, metav1.CreateOptions{})
		})
	}
	wg.Wait()
	for i := range replicas {
		if errs[i] != nil {
			t.Fatalf("create pod %d: %v", i, errs[i])
		}
		p := created[i]
		if got := p.Spec.Containers[0].Image; got != prefix+"nginx:1.25" {
			t.Errorf("%s: container image %q", p.Name, got)
		}
		if got := p.Spec.InitContainers[0].Image; got != prefix+"busybox:1.36" {
			t.Errorf("%s: init container image %q", p.Name, got)
		}
		if got := p.Annotations[handler.AnnotationPrefix+"app"]; got != "nginx:1.25" {
			t.Errorf("%s: annotation for app = %q", p.Name, got)
		}
		if got := p.Annotations[handler.AnnotationPrefix+"setup"]; got != "busybox:1.36" {
			t.Errorf("%s: annotation for setup = %q", p.Name, got)
		}
	}

	want := map[string]string{
		mirror.ReplicationName(prefix + "nginx:1.25"):   "nginx:1.25",
		mirror.ReplicationName(prefix + "busybox:1.36"): "busybox:1.36",
	}
	testenv.Eventually(t, 5*time.Second, func(ctx context.Context) (bool, string) {
		list, err := irs.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		return len(list.Items) == len(want), fmt.Sprintf("%d ImageReplications", len(list.Items))
	})
	// Nothing more arrives later: exactly one per destination.
	time.Sleep(500 * time.Millisecond)
	list, err := irs.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != len(want) {
		t.Fatalf("%d ImageReplications for %d images", len(list.Items), len(want))
	}
	for _, ir := range list.Items {
		src, ok := want[ir.Name]
		if !ok || ir.Spec.Source != src || ir.Spec.Destination != prefix+src {
			t.Errorf("unexpected ImageReplication %s: %+v", ir.Name, ir.Spec)
		}
	}
	if got := u.metric(t, "orbit_image_updater_replications_created_total", "outcome", "created"); got != 2 {
		t.Errorf("replications created metric = %v, want 2", got)
	}
	// Deduplicated in memory: two creates reached the API server, not forty.
	if got := u.metric(t, "orbit_image_updater_replications_requested_total"); got != 2 {
		t.Errorf("replications requested metric = %v, want 2", got)
	}
	if got := u.metric(t, "orbit_image_updater_images_rewritten_total"); got < 2*replicas {
		t.Errorf("images rewritten metric = %v, want at least %d", got, 2*replicas)
	}

	// A dry run is rewritten and creates nothing.
	dry, err := pods.Create(ctx, newPod("dry", "redis:7"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		t.Fatal(err)
	}
	if got := dry.Spec.Containers[0].Image; got != prefix+"redis:7" || dry.Annotations[handler.AnnotationPrefix+"app"] != "redis:7" {
		t.Errorf("dry-run pod image %q annotations %v", got, dry.Annotations)
	}

	// An excluded namespace is left alone.
	ex, err := env.Clientset.CoreV1().Pods(excluded.Name).Create(ctx, newPod("left", "nginx:1.25"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Spec.Containers[0].Image != "nginx:1.25" || len(ex.Annotations) != 0 {
		t.Errorf("pod of an excluded namespace changed: image %q annotations %v", ex.Spec.Containers[0].Image, ex.Annotations)
	}

	// An update that changes the image: the new image is rewritten and recorded.
	p := created[0].DeepCopy()
	p.Spec.Containers[0].Image = "nginx:1.26"
	updated, err := pods.Update(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := updated.Spec.Containers[0].Image; got != prefix+"nginx:1.26" || updated.Annotations[handler.AnnotationPrefix+"app"] != "nginx:1.26" {
		t.Errorf("updated image %q annotations %v", got, updated.Annotations)
	}
	// An update that leaves images alone is not touched.
	updated.Labels["extra"] = "yes"
	relabelled, err := pods.Update(ctx, updated, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if relabelled.Spec.Containers[0].Image != prefix+"nginx:1.26" || relabelled.Labels["extra"] != "yes" {
		t.Errorf("relabelled pod %+v", relabelled.Spec.Containers)
	}
	testenv.Eventually(t, 5*time.Second, func(ctx context.Context) (bool, string) {
		_, err := irs.Get(ctx, mirror.ReplicationName(prefix+"nginx:1.26"))
		return err == nil, fmt.Sprintf("ImageReplication for nginx:1.26: %v", err)
	})

	// Long after the dry run there is still no ImageReplication for it.
	if _, err := irs.Get(ctx, mirror.ReplicationName(prefix+"redis:7")); !apierrors.IsNotFound(err) {
		t.Errorf("dry run created an ImageReplication (get: %v)", err)
	}
}

// whenReplicated: an image whose ImageReplication is Complete is rewritten; another is left
// as written and its ImageReplication is created, so the next Pod gets the mirror once the
// replicator completes it.
func TestWhenReplicatedPolicy(t *testing.T) {
	ctx := t.Context()
	orbitNS := env.Namespace(t, "orbit", nil)
	label := map[string]string{"orbit-test/image-updater": orbitNS.Name}
	team := env.Namespace(t, "team", label)
	irs := orbitClient(t).ImageReplications(orbitNS.Name)

	done := prefix + "nginx:1.25"
	ir, err := irs.Create(ctx, &orbitv1.ImageReplication{
		ObjectMeta: metav1.ObjectMeta{Name: mirror.ReplicationName(done)},
		Spec:       orbitv1.ImageReplicationSpec{Source: "nginx:1.25", Destination: done},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ir.Status = orbitv1.ImageReplicationStatus{Phase: orbitv1.PhaseComplete, Attempt: 1, Message: "test"}
	if _, err := irs.UpdateStatus(ctx, ir, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	opts := options()
	opts.Policy = string(handler.RewriteWhenReplicated)
	u := startUpdater(t, opts, orbitNS.Name, env.Config)
	u.register(t, label, team.Name, "nginx:1.25")

	p := newPod("mixed", "nginx:1.25")
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "cache", Image: "redis:7"})
	got, err := env.Clientset.CoreV1().Pods(team.Name).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.Containers[0].Image != done || got.Spec.Containers[1].Image != "redis:7" {
		t.Errorf("images %q, %q: want the replicated one rewritten and the other kept",
			got.Spec.Containers[0].Image, got.Spec.Containers[1].Image)
	}
	if _, ok := got.Annotations[handler.AnnotationPrefix+"cache"]; ok {
		t.Errorf("annotation recorded for a container not rewritten: %v", got.Annotations)
	}
	testenv.Eventually(t, 5*time.Second, func(ctx context.Context) (bool, string) {
		r, err := irs.Get(ctx, mirror.ReplicationName(prefix+"redis:7"))
		if err != nil {
			return false, err.Error()
		}
		return r.Spec.Source == "redis:7", fmt.Sprintf("spec %+v", r.Spec)
	})
}
