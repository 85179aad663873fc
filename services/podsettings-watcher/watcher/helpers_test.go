package watcher_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"

	"github.com/orbit-workbench/orbit-controller/services/podsettings-watcher/internal/podsettings"
	"github.com/orbit-workbench/orbit-controller/services/podsettings-watcher/watcher"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{}, &env) }

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// teamNamespace creates a team namespace named after its team.
func teamNamespace(t *testing.T, prefix string) string {
	t.Helper()
	name := prefix + "-" + suffix()
	env.CreateNamespace(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
		Labels: map[string]string{podsettings.LabelSpace: podsettings.SpaceTeam, podsettings.LabelTeam: name}}})
	return name
}

type running struct {
	w    *watcher.Watcher
	stop func()
}

// start runs a watcher until the test ends (or stop is called) with its own controller
// namespace unless opts names one.
func start(t *testing.T, opts watcher.Options) *running {
	t.Helper()
	if opts.Namespace == "" {
		opts.Namespace = env.Namespace(t, "ctl", nil).Name
	}
	w, err := watcher.New(env.Config, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	if opts.Identity != "" {
		log = log.With().Str("identity", opts.Identity).Logger()
	}
	ctx = log.WithContext(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("watcher %s stopped with %v", opts.Identity, err)
		}
	}
	t.Cleanup(stop)
	return &running{w: w, stop: stop}
}

func options() watcher.Options {
	o := watcher.DefaultOptions()
	o.Namespace = ""
	o.Workers = 2
	o.Queue = controller.QueueOptions{BaseDelay: 20 * time.Millisecond, MaxDelay: 2 * time.Second}
	return o
}

type psOpt func(*orbitv1.PodSetting)

func teamLabelled(ps *orbitv1.PodSetting) {
	if ps.Labels == nil {
		ps.Labels = map[string]string{}
	}
	ps.Labels[podsettings.LabelSpace] = podsettings.SpaceTeam
}

func createPodSetting(t *testing.T, namespace, name, desc string, opts ...psOpt) *unstructured.Unstructured {
	t.Helper()
	ps := &orbitv1.PodSetting{
		TypeMeta:   metav1.TypeMeta{APIVersion: orbitv1.SchemeGroupVersion.String(), Kind: "PodSetting"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: orbitv1.PodSettingSpec{
			Desc:        desc,
			PodSelector: orbitv1.PodSelector{MatchLabels: map[string]string{"orbit/" + name: ""}},
		},
	}
	for _, o := range opts {
		o(ps)
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ps)
	if err != nil {
		t.Fatal(err)
	}
	created, err := env.Dynamic.Resource(podsettings.PodSettingGVR).Namespace(namespace).Create(t.Context(),
		&unstructured.Unstructured{Object: m}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create podsetting %s/%s: %v", namespace, name, err)
	}
	return created
}

func patchPodSetting(t *testing.T, namespace, name, patch string) {
	t.Helper()
	_, err := env.Dynamic.Resource(podsettings.PodSettingGVR).Namespace(namespace).Patch(t.Context(), name,
		types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("patch podsetting %s/%s with %s: %v", namespace, name, patch, err)
	}
}

func getPodSetting(ctx context.Context, namespace, name string) (*orbitv1.PodSetting, error) {
	u, err := env.Dynamic.Resource(podsettings.PodSettingGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return podsettings.FromUnstructured(u)
}

func getPodDefault(ctx context.Context, namespace, name string) (*unstructured.Unstructured, error) {
	return env.Dynamic.Resource(podsettings.PodDefaultGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
}

// waitPodDefault waits until the PodDefault exists and cond holds for it.
func waitPodDefault(t *testing.T, timeout time.Duration, namespace, name string, cond func(pd *unstructured.Unstructured) (bool, string)) *unstructured.Unstructured {
	t.Helper()
	var last *unstructured.Unstructured
	testenv.Eventually(t, timeout, func(ctx context.Context) (bool, string) {
		pd, err := getPodDefault(ctx, namespace, name)
		if err != nil {
			return false, err.Error()
		}
		last = pd
		if cond == nil {
			return true, ""
		}
		return cond(pd)
	})
	return last
}

func waitNoPodDefault(t *testing.T, timeout time.Duration, namespace, name string) {
	t.Helper()
	testenv.Eventually(t, timeout, func(ctx context.Context) (bool, string) {
		_, err := getPodDefault(ctx, namespace, name)
		if apierrors.IsNotFound(err) {
			return true, ""
		}
		return false, fmt.Sprintf("poddefault %s/%s still there (%v)", namespace, name, err)
	})
}

func desc(pd *unstructured.Unstructured) string {
	d, _, _ := unstructured.NestedString(pd.Object, "spec", "desc")
	return d
}

// waitValid waits until the PodSetting's Valid condition has the given status for its
// current generation, and returns the PodSetting.
func waitValid(t *testing.T, timeout time.Duration, namespace, name string, status metav1.ConditionStatus) *orbitv1.PodSetting {
	t.Helper()
	var ps *orbitv1.PodSetting
	testenv.Eventually(t, timeout, func(ctx context.Context) (bool, string) {
		var err error
		ps, err = getPodSetting(ctx, namespace, name)
		if err != nil {
			return false, err.Error()
		}
		for _, c := range ps.Status.Conditions {
			if c.Type == orbitv1.ConditionValid {
				if c.Status == status && c.ObservedGeneration == ps.Generation && ps.Status.ObservedGeneration == ps.Generation {
					return true, ""
				}
				return false, fmt.Sprintf("Valid=%s reason %s for generation %d (object generation %d)", c.Status, c.Reason, c.ObservedGeneration, ps.Generation)
			}
		}
		return false, "no Valid condition yet"
	})
	return ps
}
