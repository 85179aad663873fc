package testenv_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{}, &env) }

func TestControlPlaneVersionAndCRDs(t *testing.T) {
	v, err := env.Clientset.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Errorf("API server reports %s, want v1.37.2 (ldflags of make kube-binaries)", v.GitVersion)
	}
	for _, gvr := range []schema.GroupVersionResource{
		{Group: "orbit.aws", Version: "v1", Resource: "podsettings"},
		{Group: "orbit.aws", Version: "v1", Resource: "imagereplications"},
		{Group: "kubeflow.org", Version: "v1alpha1", Resource: "poddefaults"},
	} {
		if _, err := env.Dynamic.Resource(gvr).Namespace("default").List(t.Context(), metav1.ListOptions{}); err != nil {
			t.Errorf("list %s: %v", gvr, err)
		}
	}
}

// The namespace controller and garbage collector of kube-controller-manager must run: the
// watchers rely on both.
func TestControllerManagerDeletesNamespacesAndCollectsGarbage(t *testing.T) {
	ctx := t.Context()
	ns := env.Namespace(t, "gc", nil)
	cms := env.Clientset.CoreV1().ConfigMaps(ns.Name)
	owner, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "owner"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name:            "owned",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID}},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, owner.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		_, err := cms.Get(ctx, "owned", metav1.GetOptions{})
		return apierrors.IsNotFound(err), "owned ConfigMap still present"
	})
	if err := env.Clientset.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		_, err := env.Clientset.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), "namespace still present"
	})
}
