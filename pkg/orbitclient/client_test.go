package orbitclient_test

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{NoControllerManager: true}, &env) }

// The typed client round-trips every field through the real API server (and so through the
// generated CRD schema: a field the schema prunes would come back empty).
func TestPodSettingRoundTripAndInformer(t *testing.T) {
	ctx := t.Context()
	c, err := orbitclient.New(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t, "team", nil)
	pss := c.PodSettings(ns.Name)
	inf := pss.Informer(0)
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer never synced")
	}
	ps := &orbitv1.PodSetting{
		ObjectMeta: metav1.ObjectMeta{Name: "gpu", Labels: map[string]string{"orbit/space": "team"}},
		Spec: orbitv1.PodSettingSpec{
			Desc:              "GPU",
			PodSelector:       orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{{Key: "app", Operator: "Bogus"}}},
			ContainerSelector: &orbitv1.ContainerSelector{JSONPath: "metadata.labels.app"},
			NodeSelector:      map[string]string{"kubernetes.io/os": "linux"},
		},
	}
	created, err := pss.Create(ctx, ps, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Spec.PodSelector.MatchExpressions[0].Operator != "Bogus" || created.Spec.ContainerSelector.JSONPath != "metadata.labels.app" {
		t.Errorf("spec not kept: %+v", created.Spec)
	}
	testenv.Eventually(t, 5*time.Second, func(context.Context) (bool, string) {
		_, ok, _ := inf.GetStore().GetByKey(ns.Name + "/gpu")
		return ok, "informer has not seen the PodSetting"
	})
	created.Status.Conditions = []metav1.Condition{{Type: orbitv1.ConditionValid, Status: metav1.ConditionFalse, Reason: "InvalidSelector", Message: "x", LastTransitionTime: metav1.Now()}}
	updated, err := pss.UpdateStatus(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(updated.Status.Conditions) != 1 {
		t.Errorf("status not written: %+v", updated.Status)
	}
	if err := pss.Delete(ctx, "gpu", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pss.Get(ctx, "gpu"); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v", err)
	}
}

func TestImageReplicationStatusPatch(t *testing.T) {
	ctx := t.Context()
	c, err := orbitclient.New(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace(t, "sys", nil)
	irs := c.ImageReplications(ns.Name)
	_, err = irs.Create(ctx, &orbitv1.ImageReplication{
		ObjectMeta: metav1.ObjectMeta{Name: "nginx"},
		Spec:       orbitv1.ImageReplicationSpec{Source: "nginx", Destination: "mirror/nginx"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := irs.Patch(ctx, "nginx", types.MergePatchType, []byte(`{"status":{"phase":"Replicating","attempt":1}}`), metav1.PatchOptions{}, "status")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != orbitv1.PhaseReplicating || got.Status.Attempt != 1 {
		t.Errorf("status %+v", got.Status)
	}
	if _, err := irs.Patch(ctx, "nginx", types.MergePatchType, []byte(`{"status":{"phase":"Bogus"}}`), metav1.PatchOptions{}, "status"); err == nil {
		t.Error("the CRD schema accepted phase Bogus")
	}
}
