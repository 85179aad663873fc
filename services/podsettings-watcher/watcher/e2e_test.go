package watcher_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"

	"github.com/orbit-workbench/orbit-controller/services/podsettings-watcher/internal/podsettings"
	"github.com/orbit-workbench/orbit-controller/services/podsettings-watcher/watcher"
)

func TestTeamPodSettingGetsItsPodDefaultUntilGarbageCollected(t *testing.T) {
	ctx := t.Context()
	team := teamNamespace(t, "lake")
	opts := options()
	opts.Namespace = env.Namespace(t, "ctl", nil).Name
	unstarted, err := watcher.New(env.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	if unstarted.Ready(ctx) == nil {
		t.Error("ready before its caches synced")
	}
	r := start(t, opts)
	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		if err := r.w.Ready(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})

	ps := createPodSetting(t, team, "gpu", "GPU nodes", teamLabelled)
	pd := waitPodDefault(t, 10*time.Second, team, "gpu", nil)

	labels := pd.GetLabels()
	if labels["orbit/space"] != "team" || labels["orbit/team"] != team || len(labels) != 2 {
		t.Errorf("labels %v, want orbit/space=team and orbit/team=%s", labels, team)
	}
	refs := pd.GetOwnerReferences()
	if len(refs) != 1 || refs[0].UID != ps.GetUID() || refs[0].Kind != "PodSetting" || refs[0].APIVersion != "orbit.aws/v1" ||
		refs[0].Name != "gpu" || refs[0].Controller == nil || !*refs[0].Controller || refs[0].BlockOwnerDeletion == nil || !*refs[0].BlockOwnerDeletion {
		t.Errorf("owner references %+v, want the PodSetting as controller with blockOwnerDeletion", refs)
	}
	spec, _, _ := unstructured.NestedMap(pd.Object, "spec")
	wantSpec := map[string]any{"desc": "GPU nodes", "selector": map[string]any{"matchLabels": map[string]any{"orbit/gpu": ""}}}
	if fmt.Sprint(spec) != fmt.Sprint(wantSpec) {
		t.Errorf("spec %v, want %v", spec, wantSpec)
	}
	if mf := pd.GetManagedFields(); len(mf) == 0 || mf[0].Manager != "podsettings-watcher" {
		t.Errorf("managed fields %+v, want the watcher as field manager", mf)
	}

	// The state key is bumped so the pod-modifier refreshes.
	testenv.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, string) {
		cm, err := env.Clientset.CoreV1().ConfigMaps(opts.Namespace).Get(ctx, controller.StateConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		s, err := controller.ReadState(cm, controller.StateKeyPodSettingsWatcher)
		if err != nil || s.LastResourceVersion == "" {
			return false, fmt.Sprintf("state %+v, %v", s, err)
		}
		return true, ""
	})

	// A desc change is patched through.
	patchPodSetting(t, team, "gpu", `{"spec":{"desc":"Bigger GPUs"}}`)
	waitPodDefault(t, 10*time.Second, team, "gpu", func(pd *unstructured.Unstructured) (bool, string) {
		return desc(pd) == "Bigger GPUs", "desc is " + desc(pd)
	})

	// Someone deletes the PodDefault: it comes back.
	if err := env.Dynamic.Resource(podsettings.PodDefaultGVR).Namespace(team).Delete(ctx, "gpu", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPodDefault(t, 10*time.Second, team, "gpu", func(p *unstructured.Unstructured) (bool, string) {
		return p.GetUID() != pd.GetUID() && desc(p) == "Bigger GPUs", "not recreated yet"
	})

	// Deleting the PodSetting: the garbage collector removes the PodDefault.
	if err := env.Dynamic.Resource(podsettings.PodSettingGVR).Namespace(team).Delete(ctx, "gpu", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitNoPodDefault(t, 30*time.Second, team, "gpu")
}

func TestOnlyEnabledTeamPodSettingsKeepAPodDefault(t *testing.T) {
	ctx := t.Context()
	team := teamNamespace(t, "ocean")
	start(t, options())

	disabled := func(ps *orbitv1.PodSetting) { ps.Labels["orbit/disable-watcher"] = "true" }
	createPodSetting(t, team, "plain", "no labels")
	createPodSetting(t, team, "off", "disabled", teamLabelled, disabled)
	createPodSetting(t, team, "on", "enabled", teamLabelled)
	createPodSetting(t, team, "moved", "will leave the team space", teamLabelled)
	waitPodDefault(t, 10*time.Second, team, "on", nil)
	waitPodDefault(t, 10*time.Second, team, "moved", nil)
	// The watcher has looked at the other two (it validates every PodSetting it sees)...
	waitValid(t, 10*time.Second, team, "plain", metav1.ConditionTrue)
	waitValid(t, 10*time.Second, team, "off", metav1.ConditionTrue)
	// ...and made no PodDefault for them.
	for _, name := range []string{"plain", "off"} {
		if _, err := getPodDefault(ctx, team, name); !apierrors.IsNotFound(err) {
			t.Errorf("poddefault %s: %v, want none", name, err)
		}
	}

	// Gaining orbit/disable-watcher, or losing orbit/space=team, loses the PodDefault.
	patchPodSetting(t, team, "on", `{"metadata":{"labels":{"orbit/disable-watcher":""}}}`)
	patchPodSetting(t, team, "moved", `{"metadata":{"labels":{"orbit/space":null}}}`)
	waitNoPodDefault(t, 10*time.Second, team, "on")
	waitNoPodDefault(t, 10*time.Second, team, "moved")

	// Losing the disable label brings it (back).
	patchPodSetting(t, team, "off", `{"metadata":{"labels":{"orbit/disable-watcher":null}}}`)
	waitPodDefault(t, 10*time.Second, team, "off", func(pd *unstructured.Unstructured) (bool, string) {
		return desc(pd) == "disabled", "desc is " + desc(pd)
	})
}

func TestPodDefaultTheWatcherDidNotMakeIsLeftAlone(t *testing.T) {
	ctx := t.Context()
	team := teamNamespace(t, "river")
	handMade := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubeflow.org/v1alpha1", "kind": "PodDefault",
		"metadata": map[string]any{"name": "taken", "namespace": team,
			"labels": map[string]any{"orbit/space": "team", "orbit/team": team}},
		"spec": map[string]any{"desc": "hand made", "selector": map[string]any{"matchLabels": map[string]any{"x": "y"}}},
	}}
	if _, err := env.Dynamic.Resource(podsettings.PodDefaultGVR).Namespace(team).Create(ctx, handMade, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start(t, options())
	createPodSetting(t, team, "taken", "from the podsetting", teamLabelled)
	createPodSetting(t, team, "free", "sync point", teamLabelled)
	waitPodDefault(t, 10*time.Second, team, "free", nil)
	waitValid(t, 10*time.Second, team, "taken", metav1.ConditionTrue)

	pd, err := getPodDefault(ctx, team, "taken")
	if err != nil {
		t.Fatal(err)
	}
	if desc(pd) != "hand made" || len(pd.GetOwnerReferences()) != 0 {
		t.Errorf("hand-made poddefault was changed: desc %q, owners %v", desc(pd), pd.GetOwnerReferences())
	}
	// Disabling the PodSetting does not delete a PodDefault that is not ours.
	patchPodSetting(t, team, "taken", `{"metadata":{"labels":{"orbit/disable-watcher":""}},"spec":{"desc":"changed"}}`)
	patchPodSetting(t, team, "free", `{"spec":{"desc":"sync point 2"}}`)
	waitPodDefault(t, 10*time.Second, team, "free", func(pd *unstructured.Unstructured) (bool, string) {
		return desc(pd) == "sync point 2", "desc is " + desc(pd)
	})
	waitValid(t, 10*time.Second, team, "taken", metav1.ConditionTrue) // generation 2 seen
	if _, err := getPodDefault(ctx, team, "taken"); err != nil {
		t.Errorf("hand-made poddefault: %v, want it kept", err)
	}
	// Once the hand-made one is gone and the PodSetting enabled again, the watcher makes its own.
	if err := env.Dynamic.Resource(podsettings.PodDefaultGVR).Namespace(team).Delete(ctx, "taken", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	patchPodSetting(t, team, "taken", `{"metadata":{"labels":{"orbit/disable-watcher":null}}}`)
	waitPodDefault(t, 10*time.Second, team, "taken", func(pd *unstructured.Unstructured) (bool, string) {
		return desc(pd) == "changed" && len(pd.GetOwnerReferences()) == 1, "not ours yet"
	})
}

func TestInvalidPodSettingIsReportedAndFixed(t *testing.T) {
	ctx := t.Context()
	team := teamNamespace(t, "delta")
	start(t, options())

	badRegex := func(ps *orbitv1.PodSetting) {
		ps.Spec.ContainerSelector = &orbitv1.ContainerSelector{Regex: "(notebook"}
	}
	createPodSetting(t, team, "regex", "bad regex", teamLabelled, badRegex)
	badOperator := func(ps *orbitv1.PodSetting) {
		ps.Spec.PodSelector.MatchExpressions = []orbitv1.SelectorRequirement{{Key: "app", Operator: "Is", Values: []string{"x"}}}
	}
	createPodSetting(t, team, "operator", "bad operator, not a team podsetting", badOperator)

	ps := waitValid(t, 10*time.Second, team, "regex", metav1.ConditionFalse)
	c := condition(ps)
	if c.Reason != podsettings.ReasonInvalidContainerSelector || !strings.Contains(c.Message, "containerSelector.regex") ||
		len(ps.Status.SelectorErrors) != 1 || !strings.HasPrefix(ps.Status.SelectorErrors[0], "containerSelector.regex") {
		t.Errorf("condition %+v, selectorErrors %q", c, ps.Status.SelectorErrors)
	}
	// An invalid PodSetting still gets its PodDefault: the PodDefault only selects by label, and
	// the user sees the PodSetting's problem in its status.
	waitPodDefault(t, 10*time.Second, team, "regex", nil)

	op := waitValid(t, 10*time.Second, team, "operator", metav1.ConditionFalse)
	if c := condition(op); c.Reason != podsettings.ReasonInvalidPodSelector || !strings.Contains(c.Message, `unknown operator "Is"`) {
		t.Errorf("condition %+v", c)
	}

	// Fixing the regex flips it to True and clears the errors.
	patchPodSetting(t, team, "regex", `{"spec":{"containerSelector":{"regex":"notebook"}}}`)
	ps = waitValid(t, 10*time.Second, team, "regex", metav1.ConditionTrue)
	if c := condition(ps); c.Reason != podsettings.ReasonValid || len(ps.Status.SelectorErrors) != 0 || ps.Status.ObservedGeneration != 2 {
		t.Errorf("condition %+v, selectorErrors %q, observedGeneration %d", c, ps.Status.SelectorErrors, ps.Status.ObservedGeneration)
	}

	// No write loop: the status write is itself an update event, which must not cause another.
	before := ps.ResourceVersion
	time.Sleep(2 * time.Second)
	after, err := getPodSetting(ctx, team, "regex")
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before {
		t.Errorf("podsetting keeps changing: resourceVersion %s then %s", before, after.ResourceVersion)
	}
}

func condition(ps *orbitv1.PodSetting) metav1.Condition {
	for _, c := range ps.Status.Conditions {
		if c.Type == orbitv1.ConditionValid {
			return c
		}
	}
	return metav1.Condition{}
}

func TestStandbyTakesOverWhenLeaderStops(t *testing.T) {
	team := teamNamespace(t, "fjord")
	ctl := env.Namespace(t, "ctl", nil).Name
	opts := options()
	opts.Namespace = ctl
	opts.Leader = controller.LeaderOptions{Enabled: true, LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}

	a := opts
	a.Identity = "a"
	leader := start(t, a)
	testenv.Eventually(t, 30*time.Second, func(context.Context) (bool, string) { return leader.w.Leading(), "a does not lead" })
	b := opts
	b.Identity = "b"
	standby := start(t, b)
	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		if err := standby.w.Ready(ctx); err != nil {
			return false, err.Error()
		}
		return true, ""
	})

	createPodSetting(t, team, "first", "made by a", teamLabelled)
	waitPodDefault(t, 10*time.Second, team, "first", nil)
	if standby.w.Leading() {
		t.Fatal("b leads while a holds the lease")
	}

	stopped := time.Now()
	leader.stop()
	testenv.Eventually(t, opts.Leader.LeaseDuration, func(context.Context) (bool, string) { return standby.w.Leading(), "b has not taken over" })
	createPodSetting(t, team, "second", "made by b", teamLabelled)
	patchPodSetting(t, team, "first", `{"spec":{"desc":"changed under b"}}`)
	waitPodDefault(t, opts.Leader.LeaseDuration, team, "second", nil)
	waitPodDefault(t, opts.Leader.LeaseDuration, team, "first", func(pd *unstructured.Unstructured) (bool, string) {
		return desc(pd) == "changed under b", "desc is " + desc(pd)
	})
	t.Logf("b took over and reconciled %s after a stopped", time.Since(stopped).Round(time.Millisecond))
}
