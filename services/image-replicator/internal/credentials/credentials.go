// Package credentials gives the copy backend and the mirror check the source registries'
// credentials from a Secret of type kubernetes.io/dockerconfigjson (--docker-config-secret):
// read once for the inventory mode, followed by a watch in the controller, so a rotated
// password applies from the next copy on without a restart.
package credentials

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/orbit-workbench/orbit-controller/services/image-replicator/internal/oci"
)

// Keychain parses a docker config Secret.
func Keychain(s *corev1.Secret) (*oci.DockerConfigKeychain, error) {
	var data []byte
	switch s.Type {
	case corev1.SecretTypeDockerConfigJson:
		data = s.Data[corev1.DockerConfigJsonKey]
	case corev1.SecretTypeDockercfg:
		data = s.Data[corev1.DockerConfigKey]
	default:
		return nil, fmt.Errorf("secret %s/%s is of type %q, want %s", s.Namespace, s.Name, s.Type, corev1.SecretTypeDockerConfigJson)
	}
	kc, err := oci.NewDockerConfigKeychain(data)
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return kc, nil
}

// Load reads the Secret once.
func Load(ctx context.Context, client kubernetes.Interface, namespace, name string) (*oci.DockerConfigKeychain, error) {
	s, err := client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read registry credentials %s/%s: %w", namespace, name, err)
	}
	return Keychain(s)
}

// Watcher is an authn.Keychain following one Secret. Until the Secret is seen, and while it
// is missing or unusable, it answers anonymous (logged), so public sources keep working.
type Watcher struct {
	informer cache.SharedIndexInformer
	current  atomic.Pointer[oci.DockerConfigKeychain]
}

// NewWatcher watches Secret namespace/name.
func NewWatcher(client kubernetes.Interface, namespace, name string) *Watcher {
	selector := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = selector
			return client.CoreV1().Secrets(namespace).List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = selector
			return client.CoreV1().Secrets(namespace).Watch(ctx, opts)
		},
	}
	return &Watcher{informer: cache.NewSharedIndexInformer(lw, &corev1.Secret{}, 0, cache.Indexers{})}
}

// Run follows the Secret until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
	update := func(obj any) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return
		}
		kc, err := Keychain(s)
		if err != nil {
			log.Error().Err(err).Msg("registry credentials unusable; pulling anonymously")
			w.current.Store(nil)
			return
		}
		w.current.Store(kc)
		log.Info().Str("secret", s.Namespace+"/"+s.Name).Msg("registry credentials loaded")
	}
	if _, err := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    update,
		UpdateFunc: func(_, obj any) { update(obj) },
		DeleteFunc: func(any) {
			log.Warn().Msg("registry credentials Secret deleted; pulling anonymously")
			w.current.Store(nil)
		},
	}); err != nil {
		return fmt.Errorf("watch registry credentials: %w", err)
	}
	w.informer.RunWithContext(ctx)
	return nil
}

// Ready is nil once the Secret has been looked for.
func (w *Watcher) Ready(context.Context) error {
	if !w.informer.HasSynced() {
		return errors.New("registry credentials Secret not read yet")
	}
	return nil
}

// Resolve implements authn.Keychain.
func (w *Watcher) Resolve(res authn.Resource) (authn.Authenticator, error) {
	kc := w.current.Load()
	if kc == nil {
		return authn.Anonymous, nil
	}
	return kc.Resolve(res)
}
