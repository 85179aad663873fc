// Package orbitclient is a small typed client for the orbit.aws/v1 resources (PodSetting,
// ImageReplication) and informers over it, so services keep typed objects in their caches
// instead of converting unstructured ones on every read.
package orbitclient

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// Client talks to orbit.aws/v1.
type Client struct {
	rest   rest.Interface
	params runtime.ParameterCodec
}

// New builds a client from cfg.
func New(cfg *rest.Config) (*Client, error) {
	scheme := runtime.NewScheme()
	if err := orbitv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("register orbit.aws/v1: %w", err)
	}
	metav1.AddToGroupVersion(scheme, metav1.SchemeGroupVersion)
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &orbitv1.SchemeGroupVersion
	c.APIPath = "/apis"
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("orbit.aws REST client: %w", err)
	}
	return &Client{rest: rc, params: runtime.NewParameterCodec(scheme)}, nil
}

// PodSettings is the typed interface to one namespace's PodSettings.
type PodSettings = Resources[orbitv1.PodSetting, *orbitv1.PodSetting, orbitv1.PodSettingList, *orbitv1.PodSettingList]

// ImageReplications is the typed interface to one namespace's ImageReplications.
type ImageReplications = Resources[orbitv1.ImageReplication, *orbitv1.ImageReplication, orbitv1.ImageReplicationList, *orbitv1.ImageReplicationList]

// PodSettings returns the PodSettings of namespace ("" = all).
func (c *Client) PodSettings(namespace string) *PodSettings {
	return &PodSettings{c: c, ns: namespace, resource: orbitv1.PodSettingsResource}
}

// ImageReplications returns the ImageReplications of namespace ("" = all).
func (c *Client) ImageReplications(namespace string) *ImageReplications {
	return &ImageReplications{c: c, ns: namespace, resource: orbitv1.ImageReplicationsResource}
}

// object is a pointer to an API type: what the REST client decodes into.
type object[T any] interface {
	*T
	runtime.Object
	GetName() string
}

// Resources is the typed interface to one resource of orbit.aws/v1 in one namespace; T is the
// object and L its list.
type Resources[T any, PT object[T], L any, PL interface {
	*L
	runtime.Object
}] struct {
	c        *Client
	ns       string
	resource string
}

func (r *Resources[T, PT, L, PL]) req(req *rest.Request) *rest.Request {
	return req.NamespaceIfScoped(r.ns, r.ns != "").Resource(r.resource)
}

// List lists the objects.
func (r *Resources[T, PT, L, PL]) List(ctx context.Context, opts metav1.ListOptions) (PL, error) {
	out := PL(new(L))
	err := r.req(r.c.rest.Get()).VersionedParams(&opts, r.c.params).Do(ctx).Into(out)
	return out, err
}

// Watch watches the objects.
func (r *Resources[T, PT, L, PL]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return r.req(r.c.rest.Get()).VersionedParams(&opts, r.c.params).Watch(ctx)
}

// Get reads one object.
func (r *Resources[T, PT, L, PL]) Get(ctx context.Context, name string) (PT, error) {
	out := PT(new(T))
	err := r.req(r.c.rest.Get()).Name(name).Do(ctx).Into(out)
	return out, err
}

// Create creates an object.
func (r *Resources[T, PT, L, PL]) Create(ctx context.Context, obj PT, opts metav1.CreateOptions) (PT, error) {
	out := PT(new(T))
	err := r.req(r.c.rest.Post()).VersionedParams(&opts, r.c.params).Body(obj).Do(ctx).Into(out)
	return out, err
}

// Update replaces an object (optimistic concurrency by resourceVersion).
func (r *Resources[T, PT, L, PL]) Update(ctx context.Context, obj PT, opts metav1.UpdateOptions) (PT, error) {
	out := PT(new(T))
	err := r.req(r.c.rest.Put()).Name(obj.GetName()).VersionedParams(&opts, r.c.params).Body(obj).Do(ctx).Into(out)
	return out, err
}

// UpdateStatus replaces an object's status (optimistic concurrency by resourceVersion).
func (r *Resources[T, PT, L, PL]) UpdateStatus(ctx context.Context, obj PT, opts metav1.UpdateOptions) (PT, error) {
	out := PT(new(T))
	err := r.req(r.c.rest.Put()).Name(obj.GetName()).SubResource("status").VersionedParams(&opts, r.c.params).Body(obj).Do(ctx).Into(out)
	return out, err
}

// Patch patches an object (subresource "" or "status").
func (r *Resources[T, PT, L, PL]) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresource ...string) (PT, error) {
	out := PT(new(T))
	err := r.req(r.c.rest.Patch(pt)).Name(name).SubResource(subresource...).VersionedParams(&opts, r.c.params).Body(data).Do(ctx).Into(out)
	return out, err
}

// Delete deletes an object.
func (r *Resources[T, PT, L, PL]) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return r.req(r.c.rest.Delete()).Name(name).Body(&opts).Do(ctx).Error()
}

// Informer builds a shared informer over the objects, indexed by namespace.
func (r *Resources[T, PT, L, PL]) Informer(resync time.Duration) cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return r.Watch(ctx, opts)
		},
	}, PT(new(T)), resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}
