package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"

	"github.com/orbit-workbench/orbit-controller/services/poddefaults-watcher/internal/poddefaults"
	pdwatcher "github.com/orbit-workbench/orbit-controller/services/poddefaults-watcher/watcher"
	pswatcher "github.com/orbit-workbench/orbit-controller/services/podsettings-watcher/watcher"
)

var env *testenv.Env

// kube-controller-manager runs: its garbage collector and namespace controller are part of
// the behaviour under test.
func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{}, &env) }

var podSettingGVR = orbitv1.SchemeGroupVersion.WithResource(orbitv1.PodSettingsResource)

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func team(t *testing.T, prefix string) string {
	t.Helper()
	name := prefix + "-" + suffix()
	env.CreateNamespace(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"orbit/space": "team", "orbit/team": name}}})
	return name
}

func userNamespace(t *testing.T, team, user string) string {
	t.Helper()
	name := team + "-" + user
	env.CreateNamespace(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{"orbit/space": "user", "orbit/team": team, "orbit/user": user}}})
	return name
}

// watchers runs both watchers of the shared Pod, each with its own controller namespace
// objects (Lease, state key) in ctl; stop stops both and waits for them.
func watchers(t *testing.T, ctl string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	ctx = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).WithContext(ctx)
	ps := pswatcher.DefaultOptions()
	ps.Namespace, ps.Workers = ctl, 2
	pd := pdwatcher.DefaultOptions()
	pd.Namespace, pd.Workers = ctl, 2
	errs := make(chan error, 2)
	go func() { errs <- pswatcher.Run(ctx, env.Config, ps) }()
	go func() { errs <- pdwatcher.Run(ctx, env.Config, pd) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for range 2 {
			if err := <-errs; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("watcher stopped with %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

func createPodSetting(t *testing.T, namespace, name, desc string, labels map[string]string) {
	t.Helper()
	ps := &orbitv1.PodSetting{
		TypeMeta:   metav1.TypeMeta{APIVersion: orbitv1.SchemeGroupVersion.String(), Kind: "PodSetting"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: orbitv1.PodSettingSpec{
			Desc:        desc,
			PodSelector: orbitv1.PodSelector{MatchLabels: map[string]string{"orbit/" + name: ""}},
			Env:         []corev1.EnvVar{{Name: "SETTING", Value: name}},
		},
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ps)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Dynamic.Resource(podSettingGVR).Namespace(namespace).Create(t.Context(), &unstructured.Unstructured{Object: m}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create podsetting %s/%s: %v", namespace, name, err)
	}
}

var teamSetting = map[string]string{"orbit/space": "team"}

func podSettings(namespace string) dynamic.ResourceInterface {
	return env.Dynamic.Resource(podSettingGVR).Namespace(namespace)
}

func podDefaults(namespace string) dynamic.ResourceInterface {
	return env.Dynamic.Resource(poddefaults.GVR).Namespace(namespace)
}

func patchNamespace(t *testing.T, name, body string) {
	t.Helper()
	if _, err := env.Clientset.CoreV1().Namespaces().Patch(t.Context(), name, types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch namespace %s with %s: %v", name, body, err)
	}
}

func patch(t *testing.T, r dynamic.ResourceInterface, name, body string) {
	t.Helper()
	if _, err := r.Patch(t.Context(), name, types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch %s with %s: %v", name, body, err)
	}
}

func createPodDefault(t *testing.T, namespace, name, desc string, labels, annotations map[string]string) {
	t.Helper()
	pd := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"desc": desc, "selector": map[string]any{"matchLabels": map[string]any{"orbit/" + name: ""}}},
	}}
	pd.SetAPIVersion("kubeflow.org/v1alpha1")
	pd.SetKind("PodDefault")
	pd.SetName(name)
	pd.SetLabels(labels)
	pd.SetAnnotations(annotations)
	if _, err := podDefaults(namespace).Create(t.Context(), pd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create poddefault %s/%s: %v", namespace, name, err)
	}
}

// state lists the PodDefaults of namespaces as sorted lines "ns/name desc kind", where kind is
// "team", "copy of <source>" or "own".
func state(ctx context.Context, namespaces ...string) ([]string, error) {
	var out []string
	for _, ns := range namespaces {
		list, err := podDefaults(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		for _, pd := range list.Items {
			if pd.GetDeletionTimestamp() != nil {
				continue
			}
			d, _, _ := unstructured.NestedString(pd.Object, "spec", "desc")
			l := pd.GetLabels()
			kind := "own"
			switch src := pd.GetAnnotations()["orbit/source-poddefault"]; {
			case l["orbit/space"] == "team":
				kind = "team of " + l["orbit/team"]
			case src != "":
				kind = fmt.Sprintf("copy of %s for %s", src, l["orbit/team"])
			}
			out = append(out, fmt.Sprintf("%s/%s %q %s", ns, pd.GetName(), d, kind))
		}
	}
	sort.Strings(out)
	return out, nil
}

func teamPD(team, name, desc string) string {
	return fmt.Sprintf("%s/%s %q team of %s", team, name, desc, team)
}

func copyPD(user, team, name, desc string) string {
	return fmt.Sprintf("%s/%s %q copy of %s/%s for %s", user, name, desc, team, name, team)
}

func waitState(t *testing.T, timeout time.Duration, want []string, namespaces ...string) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	testenv.Eventually(t, timeout, func(ctx context.Context) (bool, string) {
		got, err := state(ctx, namespaces...)
		if err != nil {
			return false, err.Error()
		}
		if slices.Equal(got, want) {
			return true, ""
		}
		return false, fmt.Sprintf("\ngot  %q\nwant %q", got, want)
	})
}

func TestPodSettingReachesUsersAndGarbageCollectionCleansUp(t *testing.T) {
	lake := team(t, "lake")
	ann, bob := userNamespace(t, lake, "ann"), userNamespace(t, lake, "bob")
	watchers(t, env.Namespace(t, "ctl", nil).Name)

	createPodSetting(t, lake, "gpu", "GPU nodes", teamSetting)
	all := []string{lake, ann, bob}
	waitState(t, 15*time.Second, []string{
		teamPD(lake, "gpu", "GPU nodes"), copyPD(ann, lake, "gpu", "GPU nodes"), copyPD(bob, lake, "gpu", "GPU nodes"),
	}, all...)

	// The copy carries the PodDefault the podsettings-watcher made, selector included.
	cp, err := podDefaults(ann).Get(t.Context(), "gpu", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sel, _, _ := unstructured.NestedStringMap(cp.Object, "spec", "selector", "matchLabels"); len(sel) != 1 || sel["orbit/gpu"] != "" {
		t.Errorf("copy selector %v, want orbit/gpu", sel)
	}

	patch(t, podSettings(lake), "gpu", `{"spec":{"desc":"Bigger GPUs"}}`)
	waitState(t, 15*time.Second, []string{
		teamPD(lake, "gpu", "Bigger GPUs"), copyPD(ann, lake, "gpu", "Bigger GPUs"), copyPD(bob, lake, "gpu", "Bigger GPUs"),
	}, all...)

	// Delete the PodSetting: the garbage collector deletes the team PodDefault (the watcher does
	// not), then the poddefaults-watcher deletes every copy.
	if err := podSettings(lake).Delete(t.Context(), "gpu", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitState(t, 30*time.Second, nil, all...)
}

func TestWatchersConvergeAfterRestart(t *testing.T) {
	ctx := t.Context()
	ctl := env.Namespace(t, "ctl", nil).Name
	lake, ocean := team(t, "lake"), team(t, "ocean")
	ann, bob, cid := userNamespace(t, lake, "ann"), userNamespace(t, lake, "bob"), userNamespace(t, lake, "cid")
	oli := userNamespace(t, ocean, "oli")

	stop := watchers(t, ctl)
	for _, name := range []string{"keep", "change", "remove", "disable"} {
		createPodSetting(t, lake, name, name, teamSetting)
	}
	createPodSetting(t, ocean, "sea", "sea", teamSetting)
	var before []string
	for _, name := range []string{"keep", "change", "remove", "disable"} {
		before = append(before, teamPD(lake, name, name))
		for _, u := range []string{ann, bob, cid} {
			before = append(before, copyPD(u, lake, name, name))
		}
	}
	before = append(before, teamPD(ocean, "sea", "sea"), copyPD(oli, ocean, "sea", "sea"))
	waitState(t, 20*time.Second, before, lake, ocean, ann, bob, cid, oli)
	stop()

	// While both watchers are down:
	createPodSetting(t, lake, "new", "new", teamSetting)                                    // a new PodSetting
	patch(t, podSettings(lake), "change", `{"spec":{"desc":"changed"}}`)                    // a desc change
	if err := podSettings(lake).Delete(ctx, "remove", metav1.DeleteOptions{}); err != nil { // a deleted PodSetting
		t.Fatal(err)
	}
	patch(t, podSettings(lake), "disable", `{"metadata":{"labels":{"orbit/disable-watcher":"true"}}}`)
	patch(t, podDefaults(lake), "keep", `{"spec":{"desc":"tampered"}}`) // drift of a team PodDefault
	createPodDefault(t, lake, "manual", "manual", map[string]string{"orbit/space": "team", "orbit/team": lake}, nil)
	dan := userNamespace(t, lake, "dan")                                                                 // a new user
	createPodDefault(t, dan, "manual", "mine", nil, nil)                                                 // ...with their own PodDefault of a team name
	patchNamespace(t, bob, fmt.Sprintf(`{"metadata":{"labels":{"orbit/team":%q}}}`, ocean))              // a user moved to another team
	if err := env.Clientset.CoreV1().Namespaces().Delete(ctx, cid, metav1.DeleteOptions{}); err != nil { // a user gone
		t.Fatal(err)
	}
	createPodDefault(t, ann, "ghost", "ghost", map[string]string{"orbit/space": "user", "orbit/team": lake},
		map[string]string{"orbit/source-poddefault": lake + "/ghost"}) // a copy whose source never existed
	// The garbage collector works while the watchers are down: the deleted PodSetting's
	// PodDefault goes, its copies stay behind for the watcher to find.
	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		_, err := podDefaults(lake).Get(ctx, "remove", metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprintf("team poddefault of the deleted podsetting: %v", err)
	})
	if got, err := state(ctx, ann); err != nil || !slices.Contains(got, copyPD(ann, lake, "remove", "remove")) {
		t.Fatalf("the copy of the deleted podsetting should still be there while the watchers are down: %q %v", got, err)
	}

	watchers(t, ctl)
	want := []string{
		teamPD(lake, "keep", "keep"), teamPD(lake, "change", "changed"), teamPD(lake, "new", "new"), teamPD(lake, "manual", "manual"),
		teamPD(ocean, "sea", "sea"),
		copyPD(ann, lake, "keep", "keep"), copyPD(ann, lake, "change", "changed"), copyPD(ann, lake, "new", "new"), copyPD(ann, lake, "manual", "manual"),
		copyPD(dan, lake, "keep", "keep"), copyPD(dan, lake, "change", "changed"), copyPD(dan, lake, "new", "new"),
		fmt.Sprintf("%s/manual %q own", dan, "mine"),
		copyPD(bob, ocean, "sea", "sea"),
		copyPD(oli, ocean, "sea", "sea"),
	}
	waitState(t, 30*time.Second, want, lake, ocean, ann, bob, dan, oli)

	// And it stays so: nothing flaps once converged.
	time.Sleep(2 * time.Second)
	waitState(t, time.Second, want, lake, ocean, ann, bob, dan, oli)

	// The deleted user's namespace is gone for good (nothing recreated in it).
	testenv.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, string) {
		_, err := env.Clientset.CoreV1().Namespaces().Get(ctx, cid, metav1.GetOptions{})
		return apierrors.IsNotFound(err), fmt.Sprintf("namespace %s: %v", cid, err)
	})

	// Both state keys were written by the restarted watchers.
	cm, err := env.Clientset.CoreV1().ConfigMaps(ctl).Get(ctx, controller.StateConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{controller.StateKeyPodSettingsWatcher, controller.StateKeyPodDefaultsWatcher} {
		if s, err := controller.ReadState(cm, key); err != nil || s.LastResourceVersion == "" {
			t.Errorf("state key %s: %+v %v", key, s, err)
		}
	}
}
