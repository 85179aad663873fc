package watcher_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"

	"github.com/orbit-workbench/orbit-controller/services/poddefaults-watcher/internal/poddefaults"
)

func TestEveryUserOfTheTeamGetsEveryTeamPodDefault(t *testing.T) {
	ctx := t.Context()
	lake, ocean := team(t, "lake"), team(t, "ocean")
	users := []string{userNamespace(t, lake, "ann"), userNamespace(t, lake, "bob"), userNamespace(t, lake, "cid")}
	oli := userNamespace(t, ocean, "oli")

	reg := prometheus.NewRegistry()
	opts := options()
	opts.Namespace = env.Namespace(t, "ctl", nil).Name
	opts.Registerer = reg
	start(t, opts, testLog(t))

	gpu := spec("gpu")
	gpu["env"] = []any{map[string]any{"name": "A", "value": "1"}, map[string]any{"name": "B", "value": "2"}}
	gpu["volumes"] = []any{map[string]any{"name": "scratch", "emptyDir": map[string]any{"sizeLimit": "1Gi"}}}
	teamPodDefault(t, lake, "gpu", gpu)
	teamPodDefault(t, lake, "spark", spec("spark"))
	teamPodDefault(t, ocean, "sea", spec("sea"))

	all := append([]string{lake, ocean, oli}, users...)
	want := []string{teamLine(lake, "gpu", "gpu"), teamLine(lake, "spark", "spark"), teamLine(ocean, "sea", "sea"), copyLine(oli, ocean, "sea", "sea")}
	for _, u := range users {
		want = append(want, copyLine(u, lake, "gpu", "gpu"), copyLine(u, lake, "spark", "spark"))
	}
	// Each lake user has both lake PodDefaults; ocean's user has only ocean's.
	waitState(t, 10*time.Second, want, all...)

	// A copy has the source's spec, every field of it.
	copied, err := pdClient(users[0]).Get(ctx, "gpu", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	source, err := pdClient(lake).Get(ctx, "gpu", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(copied.Object["spec"], source.Object["spec"]) {
		t.Errorf("copy spec %v, source spec %v", copied.Object["spec"], source.Object["spec"])
	}
	if l := copied.GetLabels(); len(l) != 2 {
		t.Errorf("copy labels %v, want exactly orbit/space and orbit/team", l)
	}
	if len(copied.GetOwnerReferences()) != 0 {
		t.Errorf("copy has owner references %v", copied.GetOwnerReferences())
	}

	// A user who arrives later gets every team PodDefault within a second.
	created := time.Now()
	dan := userNamespace(t, lake, "dan")
	waitState(t, time.Second, []string{copyLine(dan, lake, "gpu", "gpu"), copyLine(dan, lake, "spark", "spark")}, dan)
	t.Logf("new user namespace had its copies %s after it was created", time.Since(created).Round(time.Millisecond))
	users = append(users, dan)
	all = append(all, dan)

	// The watcher wrote each copy once: its own create events did not make it write again.
	// (Eventually: the counter moves just after the API call returns; it never goes down, so
	// a tenth create fails this check.)
	testenv.Eventually(t, 5*time.Second, func(context.Context) (bool, string) {
		got := counter(t, reg, "orbit_poddefaults_watcher_copy_writes_total", "create")
		return got == 9, fmt.Sprintf("created %v copies, want 9", got)
	})

	// A desc change, and a field removed from the spec, reach every copy.
	patchPodDefault(t, lake, "gpu", `{"spec":{"desc":"bigger gpu","env":null}}`)
	want = []string{teamLine(lake, "gpu", "bigger gpu"), teamLine(lake, "spark", "spark"), teamLine(ocean, "sea", "sea"), copyLine(oli, ocean, "sea", "sea")}
	for _, u := range users {
		want = append(want, copyLine(u, lake, "gpu", "bigger gpu"), copyLine(u, lake, "spark", "spark"))
	}
	waitState(t, 10*time.Second, want, all...)
	for _, u := range users {
		pd, err := pdClient(u).Get(ctx, "gpu", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, found, _ := unstructured.NestedFieldNoCopy(pd.Object, "spec", "env"); found {
			t.Errorf("copy in %s still has env", u)
		}
	}

	// The state key says the watcher handled it.
	testenv.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, string) {
		cm, err := env.Clientset.CoreV1().ConfigMaps(opts.Namespace).Get(ctx, controller.StateConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s, err := controller.ReadState(cm, controller.StateKeyPodDefaultsWatcher)
		return err == nil && s.LastResourceVersion != "", fmt.Sprintf("state %+v %v", s, err)
	})

	// Deleting the team PodDefault deletes its copies, and only those.
	if err := pdClient(lake).Delete(ctx, "gpu", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want = []string{teamLine(lake, "spark", "spark"), teamLine(ocean, "sea", "sea"), copyLine(oli, ocean, "sea", "sea")}
	for _, u := range users {
		want = append(want, copyLine(u, lake, "spark", "spark"))
	}
	waitState(t, 10*time.Second, want, all...)
}

// counter reads the value of a counter with the given label value from reg.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}

func TestUserNamespaceChangingTeamOrLeaving(t *testing.T) {
	lake, ocean := team(t, "lake"), team(t, "ocean")
	user := userNamespace(t, lake, "ann")
	start(t, options(), testLog(t))
	teamPodDefault(t, lake, "gpu", spec("gpu"))
	teamPodDefault(t, ocean, "sea", spec("sea"))
	waitState(t, 10*time.Second, []string{copyLine(user, lake, "gpu", "gpu")}, user)

	// Moved to another team: loses the old team's copies, gets the new team's.
	patchNamespace(t, user, fmt.Sprintf(`{"metadata":{"labels":{"orbit/team":%q}}}`, ocean))
	waitState(t, 10*time.Second, []string{copyLine(user, ocean, "sea", "sea")}, user)

	// No longer a user namespace: loses everything.
	patchNamespace(t, user, `{"metadata":{"labels":{"orbit/space":null}}}`)
	waitState(t, 10*time.Second, nil, user)

	// Back as a user of the first team.
	patchNamespace(t, user, fmt.Sprintf(`{"metadata":{"labels":{"orbit/space":"user","orbit/team":%q}}}`, lake))
	waitState(t, 10*time.Second, []string{copyLine(user, lake, "gpu", "gpu")}, user)
}

func TestUsersOwnPodDefaultIsNeverOverwritten(t *testing.T) {
	ctx := t.Context()
	lake := team(t, "lake")
	ann, bob := userNamespace(t, lake, "ann"), userNamespace(t, lake, "bob")
	own := &unstructured.Unstructured{Object: map[string]any{"spec": spec("mine")}}
	own.SetGroupVersionKind(poddefaults.GVK)
	own.SetName("gpu")
	if _, err := pdClient(ann).Create(ctx, own, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, options(), testLog(t))
	teamPodDefault(t, lake, "gpu", spec("gpu"))
	mine := fmt.Sprintf("%s/gpu desc=mine space= team= source=", ann)
	waitState(t, 10*time.Second, []string{mine, copyLine(bob, lake, "gpu", "gpu")}, ann, bob)

	// A change of the team PodDefault reaches bob, not ann's own.
	patchPodDefault(t, lake, "gpu", `{"spec":{"desc":"gpu2"}}`)
	waitState(t, 10*time.Second, []string{mine, copyLine(bob, lake, "gpu", "gpu2")}, ann, bob)

	// Once ann deletes hers, she gets the team's.
	if err := pdClient(ann).Delete(ctx, "gpu", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitState(t, 10*time.Second, []string{copyLine(ann, lake, "gpu", "gpu2"), copyLine(bob, lake, "gpu", "gpu2")}, ann, bob)
}

func TestCopiesAreRepaired(t *testing.T) {
	ctx := t.Context()
	lake := team(t, "lake")
	ann := userNamespace(t, lake, "ann")
	start(t, options(), testLog(t))
	teamPodDefault(t, lake, "gpu", spec("gpu"))
	want := []string{copyLine(ann, lake, "gpu", "gpu")}
	waitState(t, 10*time.Second, want, ann)

	// Edited by hand: restored.
	patchPodDefault(t, ann, "gpu", `{"spec":{"desc":"hacked","extra":true}}`)
	waitState(t, 10*time.Second, want, ann)
	pd, err := pdClient(ann).Get(ctx, "gpu", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(pd.Object, "spec", "extra"); found {
		t.Error("a field added to a copy by hand was kept")
	}

	// Deleted by hand: recreated.
	if err := pdClient(ann).Delete(ctx, "gpu", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitState(t, 10*time.Second, want, ann)

	// A copy whose source does not exist: deleted.
	stray := poddefaults.Copy{Namespace: ann, Name: "stray", Team: lake, Source: lake + "/stray", Spec: spec("stray")}.Object()
	if _, err := pdClient(ann).Create(ctx, stray, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitState(t, 10*time.Second, want, ann)
}

func TestStandbyTakesOverWhenLeaderStops(t *testing.T) {
	lake := team(t, "lake")
	ann := userNamespace(t, lake, "ann")
	opts := options()
	opts.Namespace = env.Namespace(t, "ctl", nil).Name
	opts.Leader = controller.LeaderOptions{Enabled: true, LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}
	a, b := opts, opts
	a.Identity, b.Identity = "a", "b"
	leader := start(t, a, testLog(t))
	testenv.Eventually(t, 30*time.Second, func(context.Context) (bool, string) { return leader.w.Leading(), "a does not lead" })
	standby := start(t, b, testLog(t))

	teamPodDefault(t, lake, "one", spec("one"))
	waitState(t, 10*time.Second, []string{copyLine(ann, lake, "one", "one")}, ann)
	if standby.w.Leading() {
		t.Fatal("b leads while a holds the lease")
	}

	stopped := time.Now()
	leader.stop()
	testenv.Eventually(t, opts.Leader.LeaseDuration, func(context.Context) (bool, string) { return standby.w.Leading(), "b has not taken over" })
	teamPodDefault(t, lake, "two", spec("two"))
	bob := userNamespace(t, lake, "bob")
	waitState(t, opts.Leader.LeaseDuration, []string{
		copyLine(ann, lake, "one", "one"), copyLine(ann, lake, "two", "two"),
		copyLine(bob, lake, "one", "one"), copyLine(bob, lake, "two", "two"),
	}, ann, bob)
	t.Logf("b took over and reconciled %s after a stopped", time.Since(stopped).Round(time.Millisecond))
}
