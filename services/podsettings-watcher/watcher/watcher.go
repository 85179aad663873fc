// Package watcher runs the podsettings-watcher (SPEC §3.3): it keeps one PodDefault per team
// PodSetting and a Valid condition on every PodSetting. It is a thin shell around the pure
// functions of internal/podsettings: informers feed a work queue keyed by PodSetting
// (namespace/name), and each reconcile reads the PodSetting and its PodDefault from the caches,
// asks podsettings.Plan and podsettings.DesiredStatus what to do, and does it.
//
// The package is exported (not internal) so that end-to-end tests of other services can run
// the watcher in-process.
package watcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/logging"
	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
	"github.com/orbit-workbench/orbit-controller/pkg/podselect"

	"github.com/orbit-workbench/orbit-controller/services/podsettings-watcher/internal/podsettings"
)

// Name is the service's name: its FieldManager, Lease name and metric subsystem.
const Name = "podsettings-watcher"

// Options configure a Watcher.
type Options struct {
	// Namespace holds the controller's own objects: the Lease and the state ConfigMap.
	Namespace string
	// Workers reconcile PodSettings concurrently.
	Workers int
	// Leader configures leader election on the Lease named Name.
	Leader controller.LeaderOptions
	// Identity of this replica in leader election; empty means hostname and start time.
	Identity string
	// ResyncPeriod re-delivers every cached object, so drift nobody reported is repaired.
	ResyncPeriod time.Duration
	// Queue tunes retries.
	Queue controller.QueueOptions
	// Registerer receives the metrics; nil keeps them private.
	Registerer prometheus.Registerer
	// CallTimeout bounds every API call.
	CallTimeout time.Duration
}

// DefaultOptions returns the defaults: the flags' defaults of SPEC §6.
func DefaultOptions() Options {
	w := controller.DefaultWatcherOptions()
	return Options{
		Namespace:    "orbit-system",
		Workers:      w.Workers,
		Leader:       w.Leader,
		ResyncPeriod: 10 * time.Minute,
		Queue:        controller.DefaultQueueOptions(),
		CallTimeout:  30 * time.Second,
	}
}

// Watcher is one running podsettings-watcher.
type Watcher struct {
	opts    Options
	dynamic dynamic.Interface
	client  kubernetes.Interface

	podSettings cache.SharedIndexInformer
	podDefaults cache.SharedIndexInformer
	queue       *controller.Queue[string]
	state       *controller.StateWriter
	metrics     *watcherMetrics

	runner *controller.Runner
	now    func() time.Time
}

type watcherMetrics struct {
	writes    *prometheus.CounterVec
	conflicts prometheus.Counter
}

// New builds a Watcher from a rest.Config (QPS and burst as the caller set them).
func New(cfg *rest.Config, opts Options) (*Watcher, error) {
	def := DefaultOptions()
	if opts.Workers < 1 {
		opts.Workers = def.Workers
	}
	if opts.Queue.BaseDelay <= 0 || opts.Queue.MaxDelay <= 0 {
		opts.Queue = def.Queue
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = def.CallTimeout
	}
	if opts.Namespace == "" {
		return nil, errors.New("watcher options: Namespace must be set")
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = Name
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build dynamic client: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build clientset: %w", err)
	}
	w := &Watcher{opts: opts, dynamic: dyn, client: cs, now: time.Now}

	sub := metrics.Subsystem(Name)
	w.metrics = &watcherMetrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "writes_total",
			Help: "Writes by the watcher, by object (poddefault, status) and action (create, update, delete).",
		}, []string{"object", "action"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: sub, Name: "poddefault_conflicts_total",
			Help: "Reconciles that found a PodDefault of a PodSetting's name that the PodSetting does not own.",
		}),
	}
	if err := opts.Registerer.Register(w.metrics.writes); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if err := opts.Registerer.Register(w.metrics.conflicts); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	w.queue = controller.NewQueue("podsettings", opts.Queue, controller.NewQueueMetrics(opts.Registerer, Name), w.reconcile)
	w.state = controller.NewStateWriter(cs, opts.Namespace, controller.StateKeyPodSettingsWatcher, Name)

	indexers := cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}
	w.podSettings = dynamicinformer.NewFilteredDynamicInformer(dyn, podsettings.PodSettingGVR, metav1.NamespaceAll,
		opts.ResyncPeriod, indexers, nil).Informer()
	// Only team PodDefaults can be ours; the many copies in user namespaces stay out of memory.
	w.podDefaults = dynamicinformer.NewFilteredDynamicInformer(dyn, podsettings.PodDefaultGVR, metav1.NamespaceAll,
		opts.ResyncPeriod, indexers, func(o *metav1.ListOptions) {
			o.LabelSelector = podsettings.LabelSpace + "=" + podsettings.SpaceTeam
		}).Informer()
	for _, inf := range []cache.SharedIndexInformer{w.podSettings, w.podDefaults} {
		if err := inf.SetTransform(stripManagedFields); err != nil {
			return nil, fmt.Errorf("informer transform: %w", err)
		}
	}
	if _, err := w.podSettings.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.enqueue,
		UpdateFunc: w.podSettingUpdated,
		DeleteFunc: w.enqueue,
	}); err != nil {
		return nil, fmt.Errorf("podsetting event handler: %w", err)
	}
	if _, err := w.podDefaults.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.podDefaultChanged,
		UpdateFunc: func(_, obj any) { w.podDefaultChanged(obj) },
		DeleteFunc: w.podDefaultChanged,
	}); err != nil {
		return nil, fmt.Errorf("poddefault event handler: %w", err)
	}
	w.runner = &controller.Runner{
		Informers: []cache.SharedIndexInformer{w.podSettings, w.podDefaults},
		Leader:    opts.Leader, Client: w.client, Namespace: opts.Namespace, Name: Name, Identity: opts.Identity,
	}
	return w, nil
}

// Run starts the watcher with opts and blocks until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, opts Options) error {
	w, err := New(cfg, opts)
	if err != nil {
		return err
	}
	return w.Run(ctx)
}

// Ready reports whether the informer caches have synced (the /readyz check).
func (w *Watcher) Ready(ctx context.Context) error { return w.runner.Ready(ctx) }

// Leading reports whether this replica holds the Lease and reconciles.
func (w *Watcher) Leading() bool { return w.runner.Leading() }

// Run syncs the caches (a standby replica keeps them warm), then reconciles while it holds
// the Lease. It returns nil when ctx ends and controller.ErrLostLease when leadership is lost.
func (w *Watcher) Run(ctx context.Context) error {
	return w.runner.Run(ctx, w.state, func(ctx context.Context) {
		// Level-triggered: a new leader (or a restart) looks at everything once.
		for _, key := range w.podSettings.GetIndexer().ListKeys() {
			w.queue.Add(key)
		}
		w.queue.Run(ctx, w.opts.Workers)
	})
}

func (w *Watcher) enqueue(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err == nil {
		w.queue.Add(key)
	}
}

// podSettingUpdated skips updates that change nothing the watcher acts on (notably its own
// status writes) unless the status is not what it should be; resyncs always pass.
func (w *Watcher) podSettingUpdated(oldObj, newObj any) {
	o, ok1 := oldObj.(*unstructured.Unstructured)
	n, ok2 := newObj.(*unstructured.Unstructured)
	if !ok1 || !ok2 || o.GetResourceVersion() == n.GetResourceVersion() ||
		o.GetGeneration() != n.GetGeneration() ||
		!equalMaps(o.GetLabels(), n.GetLabels()) ||
		(o.GetDeletionTimestamp() == nil) != (n.GetDeletionTimestamp() == nil) ||
		string(o.GetUID()) != string(n.GetUID()) {
		w.enqueue(newObj)
		return
	}
	ps, err := podsettings.FromUnstructured(n)
	if err != nil {
		w.enqueue(newObj)
		return
	}
	if _, changed := podsettings.DesiredStatus(ps, podselect.Validate(ps), w.now()); changed {
		w.enqueue(newObj)
	}
}

// podDefaultChanged brings a PodSetting of the same name back to the queue: its PodDefault
// was deleted, changed or freed.
func (w *Watcher) podDefaultChanged(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	if _, exists, _ := w.podSettings.GetIndexer().GetByKey(key); exists {
		w.queue.Add(key)
	}
}

// reconcile converges one PodSetting: its status, then its PodDefault.
func (w *Watcher) reconcile(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil // not a key we made; nothing to retry
	}
	log := zerolog.Ctx(ctx).With().Str(logging.KeyNamespace, namespace).Str(logging.KeyName, name).Logger()
	ctx = log.WithContext(ctx)

	obj, exists, err := w.podSettings.GetIndexer().GetByKey(key)
	if err != nil {
		return fmt.Errorf("read podsetting %s from cache: %w", key, err)
	}
	if !exists {
		// Deleted: the garbage collector removes its PodDefault. The pod-modifier must still
		// learn that the PodSetting is gone.
		log.Debug().Msg("podsetting gone; garbage collection removes its poddefault")
		w.state.Record(w.podSettings.LastSyncResourceVersion())
		return nil
	}
	u := obj.(*unstructured.Unstructured)
	ps, err := podsettings.FromUnstructured(u)
	if err != nil {
		// Retrying cannot fix an object the API server accepted but we cannot read.
		log.Error().Err(err).Msg("cannot decode podsetting; skipping it")
		return nil
	}

	statusErr := w.syncStatus(ctx, u, ps)
	pdErr := w.syncPodDefault(ctx, ps)
	if err := errors.Join(statusErr, pdErr); err != nil {
		return err
	}
	w.state.Record(w.podSettings.LastSyncResourceVersion())
	return nil
}

// syncStatus writes the Valid condition and selectorErrors when they are not already so.
func (w *Watcher) syncStatus(ctx context.Context, u *unstructured.Unstructured, ps *orbitv1.PodSetting) error {
	problems := podselect.Validate(ps)
	status, changed := podsettings.DesiredStatus(ps, problems, w.now())
	if !changed {
		return nil
	}
	statusMap, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&status)
	if err != nil {
		return fmt.Errorf("encode status of podsetting %s/%s: %w", ps.Namespace, ps.Name, err)
	}
	modified := u.DeepCopy()
	modified.Object["status"] = statusMap
	patch, err := mergePatch(u, modified)
	if err != nil {
		return fmt.Errorf("status patch of podsetting %s/%s: %w", ps.Namespace, ps.Name, err)
	}
	callCtx, cancel := context.WithTimeout(ctx, w.opts.CallTimeout)
	defer cancel()
	_, err = w.dynamic.Resource(podsettings.PodSettingGVR).Namespace(ps.Namespace).Patch(callCtx, ps.Name,
		types.MergePatchType, patch, metav1.PatchOptions{FieldManager: Name}, "status")
	switch {
	case apierrors.IsNotFound(err):
		return nil // deleted meanwhile
	case err != nil:
		return fmt.Errorf("patch status of podsetting %s/%s: %w", ps.Namespace, ps.Name, err)
	}
	w.metrics.writes.WithLabelValues("status", "update").Inc()
	cond := podsettings.ValidCondition(problems, ps.Generation, w.now())
	ev := zerolog.Ctx(ctx).Info().Str("valid", string(cond.Status)).Str("reason", cond.Reason)
	if len(problems) > 0 {
		ev = ev.Strs("selectorErrors", problems)
	}
	ev.Msg("updated podsetting status")
	return nil
}

// syncPodDefault creates, updates or deletes the PodSetting's PodDefault as Plan says. When
// the cache has no PodDefault but the API server does (one not labelled as a team PodDefault,
// so outside the cache), Plan decides again with the live object.
func (w *Watcher) syncPodDefault(ctx context.Context, ps *orbitv1.PodSetting) error {
	var existing *unstructured.Unstructured
	if obj, ok, err := w.podDefaults.GetIndexer().GetByKey(ps.Namespace + "/" + ps.Name); err != nil {
		return fmt.Errorf("read poddefault %s/%s from cache: %w", ps.Namespace, ps.Name, err)
	} else if ok {
		existing = obj.(*unstructured.Unstructured)
	}
	action := podsettings.Plan(ps, existing)
	if action.Kind == podsettings.Create {
		live, err := w.create(ctx, action.Object)
		if err != nil || live == nil {
			return err
		}
		existing = live
		action = podsettings.Plan(ps, live)
	}
	return w.act(ctx, ps, action, existing)
}

// create creates pd; when it already exists it returns the live object instead.
func (w *Watcher) create(ctx context.Context, pd *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	callCtx, cancel := context.WithTimeout(ctx, w.opts.CallTimeout)
	defer cancel()
	client := w.dynamic.Resource(podsettings.PodDefaultGVR).Namespace(pd.GetNamespace())
	_, err := client.Create(callCtx, pd, metav1.CreateOptions{FieldManager: Name})
	if err == nil {
		w.metrics.writes.WithLabelValues("poddefault", "create").Inc()
		desc, _, _ := unstructured.NestedString(pd.Object, "spec", "desc")
		zerolog.Ctx(ctx).Info().Str("desc", desc).Msg("created poddefault")
		return nil, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create poddefault %s/%s: %w", pd.GetNamespace(), pd.GetName(), err)
	}
	live, err := client.Get(callCtx, pd.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("poddefault %s/%s vanished while being created; retrying", pd.GetNamespace(), pd.GetName())
	}
	if err != nil {
		return nil, fmt.Errorf("read existing poddefault %s/%s: %w", pd.GetNamespace(), pd.GetName(), err)
	}
	return live, nil
}

// act carries out action; existing is the PodDefault Plan decided on, whose resourceVersion
// makes an update patch fail (409, retried) if the object changed since.
func (w *Watcher) act(ctx context.Context, ps *orbitv1.PodSetting, action podsettings.Action, existing *unstructured.Unstructured) error {
	log := zerolog.Ctx(ctx)
	client := w.dynamic.Resource(podsettings.PodDefaultGVR).Namespace(ps.Namespace)
	callCtx, cancel := context.WithTimeout(ctx, w.opts.CallTimeout)
	defer cancel()
	switch action.Kind {
	case podsettings.None:
		log.Debug().Str("why", action.Why).Msg("poddefault needs nothing")
	case podsettings.Create:
		// Create found nothing, then Plan with the live object asked to create again: the
		// object vanished in between. Try again later.
		return fmt.Errorf("poddefault %s/%s came and went; retrying", ps.Namespace, ps.Name)
	case podsettings.Conflict:
		w.metrics.conflicts.Inc()
		log.Warn().Msg("a poddefault of this name exists and was not made for this podsetting; leaving it alone")
	case podsettings.Update:
		patch, err := mergePatch(existing, action.Object)
		if err != nil {
			return fmt.Errorf("patch for poddefault %s/%s: %w", ps.Namespace, ps.Name, err)
		}
		_, err = client.Patch(callCtx, ps.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: Name})
		if apierrors.IsNotFound(err) {
			// Deleted meanwhile: look again (the object may have been outside the cache, so
			// its delete event need not come).
			w.queue.Add(ps.Namespace + "/" + ps.Name)
			return nil
		}
		if err != nil {
			return fmt.Errorf("patch poddefault %s/%s: %w", ps.Namespace, ps.Name, err)
		}
		w.metrics.writes.WithLabelValues("poddefault", "update").Inc()
		desc, _, _ := unstructured.NestedString(action.Object.Object, "spec", "desc")
		log.Info().Str("desc", desc).Msg("updated poddefault")
	case podsettings.Delete:
		uid, rv := action.Object.GetUID(), action.Object.GetResourceVersion()
		err := client.Delete(callCtx, ps.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("delete poddefault %s/%s: %w", ps.Namespace, ps.Name, err)
		}
		w.metrics.writes.WithLabelValues("poddefault", "delete").Inc()
		log.Info().Msg("deleted poddefault: its podsetting is no longer a team podsetting handled by the watcher")
	}
	return nil
}

// mergePatch is the JSON merge patch from original to modified, with original's
// resourceVersion so the API server refuses it (409) if the object changed meanwhile.
func mergePatch(original, modified *unstructured.Unstructured) ([]byte, error) {
	from, err := json.Marshal(original.Object)
	if err != nil {
		return nil, err
	}
	to, err := json.Marshal(modified.Object)
	if err != nil {
		return nil, err
	}
	patch, err := jsonpatch.CreateMergePatch(from, to)
	if err != nil {
		return nil, err
	}
	var p map[string]any
	if err := json.Unmarshal(patch, &p); err != nil {
		return nil, err
	}
	md, _ := p["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
	}
	md["resourceVersion"] = original.GetResourceVersion()
	p["metadata"] = md
	return json.Marshal(p)
}

func stripManagedFields(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetManagedFields(nil)
	}
	return obj, nil
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}
