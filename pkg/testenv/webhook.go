package testenv

import (
	"context"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodWebhook is a MutatingWebhookConfiguration that has the API server call url (a test's TLS
// server on loopback, trusted through caBundle) for Pod CREATE and UPDATE in the namespaces
// labelled nsLabels — registered the way the chart registers orbit's webhooks (failurePolicy
// Fail, reinvocation IfNeeded, sideEffects None). Tests change what they need before
// RegisterWebhook.
func PodWebhook(name, url string, caBundle []byte, nsLabels map[string]string) *admissionregistrationv1.MutatingWebhookConfiguration {
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
	timeout := int32(5)
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "hook.orbit.aws",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: nsLabels},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			ReinvocationPolicy:      &ifNeeded,
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          &timeout,
		}},
	}
}

// RegisterWebhook creates cfg and deletes it when the test ends. The API server's webhook cache
// takes a moment to see it; callers wait for their first mutated object.
func (e *Env) RegisterWebhook(t testing.TB, cfg *admissionregistrationv1.MutatingWebhookConfiguration) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	whs := e.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations()
	created, err := whs.Create(t.Context(), cfg, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("register webhook %s%s: %v", cfg.Name, cfg.GenerateName, err)
	}
	t.Cleanup(func() { _ = whs.Delete(context.Background(), created.Name, metav1.DeleteOptions{}) })
	return created
}
