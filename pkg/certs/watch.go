package certs

import (
	"context"
	"sync"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// watch runs an informer on lw until ctx ends and pokes wake on every change; the informer
// takes care of re-listing and re-watching. Watching by name keeps the RBAC to resourceNames.
func (m *Manager) watch(ctx context.Context, wg *sync.WaitGroup, lw cache.ListerWatcher, obj runtime.Object, wake chan struct{}) {
	inf := cache.NewSharedIndexInformer(lw, obj, 0, cache.Indexers{})
	// The handler only pokes; the error (informer already stopped) cannot happen before Run.
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke(wake) },
		UpdateFunc: func(any, any) { poke(wake) },
		DeleteFunc: func(any) { poke(wake) },
	})
	wg.Go(func() { inf.RunWithContext(ctx) })
}

func byName(name string) string { return fields.OneTermEqualSelector("metadata.name", name).String() }

func secretsLW(c kubernetes.Interface, namespace, name string) cache.ListerWatcher {
	sel := byName(name)
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return c.CoreV1().Secrets(namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return c.CoreV1().Secrets(namespace).Watch(ctx, o)
		},
	}
}

func webhookConfigLW(c kubernetes.Interface, name string) cache.ListerWatcher {
	sel := byName(name)
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return c.AdmissionregistrationV1().MutatingWebhookConfigurations().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return c.AdmissionregistrationV1().MutatingWebhookConfigurations().Watch(ctx, o)
		},
	}
}

func webhookConfigObject() runtime.Object {
	return &admissionregistrationv1.MutatingWebhookConfiguration{}
}

func csrLW(c kubernetes.Interface, name string) cache.ListerWatcher {
	sel := byName(name)
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return c.CertificatesV1().CertificateSigningRequests().List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return c.CertificatesV1().CertificateSigningRequests().Watch(ctx, o)
		},
	}
}
