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

// PodSettings returns the PodSettings of namespace ("" = all).
func (c *Client) PodSettings(namespace string) *PodSettings {
	return &PodSettings{c: c, ns: namespace}
}

// ImageReplications returns the ImageReplications of namespace ("" = all).
func (c *Client) ImageReplications(namespace string) *ImageReplications {
	return &ImageReplications{c: c, ns: namespace}
}

// PodSettings is the typed interface to one namespace's PodSettings.
type PodSettings struct {
	c  *Client
	ns string
}

func (p *PodSettings) req(verb func() *rest.Request) *rest.Request {
	return verb().NamespaceIfScoped(p.ns, p.ns != "").Resource(orbitv1.PodSettingsResource)
}

// List lists PodSettings.
func (p *PodSettings) List(ctx context.Context, opts metav1.ListOptions) (*orbitv1.PodSettingList, error) {
	out := &orbitv1.PodSettingList{}
	err := p.req(p.c.rest.Get).VersionedParams(&opts, p.c.params).Do(ctx).Into(out)
	return out, err
}

// Watch watches PodSettings.
func (p *PodSettings) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return p.req(p.c.rest.Get).VersionedParams(&opts, p.c.params).Watch(ctx)
}

// Get reads one PodSetting.
func (p *PodSettings) Get(ctx context.Context, name string) (*orbitv1.PodSetting, error) {
	out := &orbitv1.PodSetting{}
	err := p.req(p.c.rest.Get).Name(name).Do(ctx).Into(out)
	return out, err
}

// Create creates a PodSetting.
func (p *PodSettings) Create(ctx context.Context, ps *orbitv1.PodSetting, opts metav1.CreateOptions) (*orbitv1.PodSetting, error) {
	out := &orbitv1.PodSetting{}
	err := p.req(p.c.rest.Post).VersionedParams(&opts, p.c.params).Body(ps).Do(ctx).Into(out)
	return out, err
}

// Update replaces a PodSetting.
func (p *PodSettings) Update(ctx context.Context, ps *orbitv1.PodSetting, opts metav1.UpdateOptions) (*orbitv1.PodSetting, error) {
	out := &orbitv1.PodSetting{}
	err := p.req(p.c.rest.Put).Name(ps.Name).VersionedParams(&opts, p.c.params).Body(ps).Do(ctx).Into(out)
	return out, err
}

// UpdateStatus replaces a PodSetting's status.
func (p *PodSettings) UpdateStatus(ctx context.Context, ps *orbitv1.PodSetting, opts metav1.UpdateOptions) (*orbitv1.PodSetting, error) {
	out := &orbitv1.PodSetting{}
	err := p.req(p.c.rest.Put).Name(ps.Name).SubResource("status").VersionedParams(&opts, p.c.params).Body(ps).Do(ctx).Into(out)
	return out, err
}

// Delete deletes a PodSetting.
func (p *PodSettings) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return p.req(p.c.rest.Delete).Name(name).Body(&opts).Do(ctx).Error()
}

// Informer builds a shared informer over these PodSettings.
func (p *PodSettings) Informer(resync time.Duration) cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return p.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return p.Watch(ctx, opts)
		},
	}, &orbitv1.PodSetting{}, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// ImageReplications is the typed interface to one namespace's ImageReplications.
type ImageReplications struct {
	c  *Client
	ns string
}

func (r *ImageReplications) req(verb func() *rest.Request) *rest.Request {
	return verb().NamespaceIfScoped(r.ns, r.ns != "").Resource(orbitv1.ImageReplicationsResource)
}

// List lists ImageReplications.
func (r *ImageReplications) List(ctx context.Context, opts metav1.ListOptions) (*orbitv1.ImageReplicationList, error) {
	out := &orbitv1.ImageReplicationList{}
	err := r.req(r.c.rest.Get).VersionedParams(&opts, r.c.params).Do(ctx).Into(out)
	return out, err
}

// Watch watches ImageReplications.
func (r *ImageReplications) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return r.req(r.c.rest.Get).VersionedParams(&opts, r.c.params).Watch(ctx)
}

// Get reads one ImageReplication.
func (r *ImageReplications) Get(ctx context.Context, name string) (*orbitv1.ImageReplication, error) {
	out := &orbitv1.ImageReplication{}
	err := r.req(r.c.rest.Get).Name(name).Do(ctx).Into(out)
	return out, err
}

// Create creates an ImageReplication.
func (r *ImageReplications) Create(ctx context.Context, ir *orbitv1.ImageReplication, opts metav1.CreateOptions) (*orbitv1.ImageReplication, error) {
	out := &orbitv1.ImageReplication{}
	err := r.req(r.c.rest.Post).VersionedParams(&opts, r.c.params).Body(ir).Do(ctx).Into(out)
	return out, err
}

// UpdateStatus replaces an ImageReplication's status (optimistic concurrency by resourceVersion).
func (r *ImageReplications) UpdateStatus(ctx context.Context, ir *orbitv1.ImageReplication, opts metav1.UpdateOptions) (*orbitv1.ImageReplication, error) {
	out := &orbitv1.ImageReplication{}
	err := r.req(r.c.rest.Put).Name(ir.Name).SubResource("status").VersionedParams(&opts, r.c.params).Body(ir).Do(ctx).Into(out)
	return out, err
}

// Patch patches an ImageReplication (subresource "" or "status").
func (r *ImageReplications) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresource ...string) (*orbitv1.ImageReplication, error) {
	out := &orbitv1.ImageReplication{}
	err := r.req(func() *rest.Request { return r.c.rest.Patch(pt) }).Name(name).SubResource(subresource...).VersionedParams(&opts, r.c.params).Body(data).Do(ctx).Into(out)
	return out, err
}

// Delete deletes an ImageReplication.
func (r *ImageReplications) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return r.req(r.c.rest.Delete).Name(name).Body(&opts).Do(ctx).Error()
}

// Informer builds a shared informer over these ImageReplications.
func (r *ImageReplications) Informer(resync time.Duration) cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return r.Watch(ctx, opts)
		},
	}, &orbitv1.ImageReplication{}, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}
