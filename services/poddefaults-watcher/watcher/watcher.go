// Package watcher runs the poddefaults-watcher (SPEC §3.4): it copies every team PodDefault
// into every user namespace of the team. Work is keyed by team: a PodDefault event or a
// Namespace event puts the team(s) it concerns on the queue, and a reconcile reads the team's
// PodDefaults, its user namespaces and the existing copies from the informer caches, asks
// poddefaults.Desired and poddefaults.Plan what to write, and writes it concurrently. Nothing
// depends on having seen a particular event, so a restart or a missed event loses nothing.
//
// The package is exported (not internal) so that end-to-end tests and benchmarks can run the
// watcher in-process.
package watcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/logging"
	"github.com/orbit-workbench/orbit-controller/pkg/metrics"

	"github.com/orbit-workbench/orbit-controller/services/poddefaults-watcher/internal/poddefaults"
)

// Name is the service's name: its FieldManager, Lease name and metric subsystem.
const Name = "poddefaults-watcher"

// Informer indexes.
const (
	// indexSources maps a team to its team PodDefaults.
	indexSources = "sources"
	// indexCopies maps a team to the copies that say they are its.
	indexCopies = "copies"
	// indexUserTeam maps a team to its user namespaces.
	indexUserTeam = "userTeam"
)

// Options configure a Watcher.
type Options struct {
	// Namespace holds the controller's own objects: the Lease and the state ConfigMap.
	Namespace string
	// Workers reconcile teams concurrently.
	Workers int
	// Concurrency bounds the writes in flight within one team's reconcile.
	Concurrency int
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

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	w := controller.DefaultWatcherOptions()
	return Options{
		Namespace:    "orbit-system",
		Workers:      w.Workers,
		Concurrency:  32,
		Leader:       w.Leader,
		ResyncPeriod: 10 * time.Minute,
		Queue:        controller.DefaultQueueOptions(),
		CallTimeout:  30 * time.Second,
	}
}

// Watcher is one running poddefaults-watcher.
type Watcher struct {
	opts    Options
	dynamic dynamic.Interface
	client  kubernetes.Interface

	podDefaults cache.SharedIndexInformer
	namespaces  cache.SharedIndexInformer
	queue       *controller.Queue[string]
	state       *controller.StateWriter

	writes    *prometheus.CounterVec
	conflicts prometheus.Counter

	runner *controller.Runner
	// reported remembers the conflicts already logged at warn level (copy key → the version
	// of the PodDefault in its way), so a standing conflict is not logged on every reconcile.
	reported sync.Map
}

// New builds a Watcher from a rest.Config (QPS and burst as the caller set them: the fan-out
// needs the raised limits of pkg/kube).
func New(cfg *rest.Config, opts Options) (*Watcher, error) {
	def := DefaultOptions()
	if opts.Workers < 1 {
		opts.Workers = def.Workers
	}
	if opts.Concurrency < 1 {
		opts.Concurrency = def.Concurrency
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
	w := &Watcher{opts: opts, dynamic: dyn, client: cs}

	sub := metrics.Subsystem(Name)
	w.writes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: sub, Name: "copy_writes_total",
		Help: "Writes of PodDefault copies in user namespaces, by action (create, update, delete).",
	}, []string{"action"})
	w.conflicts = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Subsystem: sub, Name: "copy_conflicts_total",
		Help: "Copies not written because a PodDefault the watcher did not make holds the name (counted per reconcile).",
	})
	for _, c := range []prometheus.Collector{w.writes, w.conflicts} {
		if err := opts.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	w.queue = controller.NewQueue("teams", opts.Queue, controller.NewQueueMetrics(opts.Registerer, Name), w.reconcile)
	w.state = controller.NewStateWriter(cs, opts.Namespace, controller.StateKeyPodDefaultsWatcher, Name)

	w.podDefaults = dynamicinformer.NewFilteredDynamicInformer(dyn, poddefaults.GVR, metav1.NamespaceAll, opts.ResyncPeriod,
		cache.Indexers{indexSources: sourceIndex, indexCopies: copyIndex}, nil).Informer()
	w.namespaces = coreinformers.NewNamespaceInformer(cs, opts.ResyncPeriod, cache.Indexers{indexUserTeam: userTeamIndex})
	for _, inf := range []cache.SharedIndexInformer{w.podDefaults, w.namespaces} {
		if err := inf.SetTransform(stripManagedFields); err != nil {
			return nil, fmt.Errorf("informer transform: %w", err)
		}
	}
	if _, err := w.podDefaults.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.podDefaultEvent(obj, false) },
		UpdateFunc: w.podDefaultUpdated,
		DeleteFunc: func(obj any) { w.podDefaultEvent(obj, true) },
	}); err != nil {
		return nil, fmt.Errorf("poddefault event handler: %w", err)
	}
	if _, err := w.namespaces.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.namespaceEvent,
		UpdateFunc: w.namespaceUpdated,
		DeleteFunc: w.namespaceEvent,
	}); err != nil {
		return nil, fmt.Errorf("namespace event handler: %w", err)
	}
	w.runner = &controller.Runner{
		Informers: []cache.SharedIndexInformer{w.podDefaults, w.namespaces},
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
		// Level-triggered: a new leader (or a restart) reconciles every team it knows of, the
		// teams of stale copies included.
		for _, team := range w.teams() {
			w.queue.Add(team)
		}
		w.queue.Run(ctx, w.opts.Workers)
	})
}

func (w *Watcher) teams() []string {
	seen := map[string]struct{}{}
	for _, idx := range []struct {
		indexer cache.Indexer
		name    string
	}{{w.podDefaults.GetIndexer(), indexSources}, {w.podDefaults.GetIndexer(), indexCopies}, {w.namespaces.GetIndexer(), indexUserTeam}} {
		for _, t := range idx.indexer.ListIndexFuncValues(idx.name) {
			seen[t] = struct{}{}
		}
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	return out
}

// reconcile converges one team's copies.
func (w *Watcher) reconcile(ctx context.Context, team string) error {
	start := time.Now()
	log := zerolog.Ctx(ctx).With().Str(logging.KeyTeam, team).Logger()
	ctx = log.WithContext(ctx)

	sources, err := byIndex[*unstructured.Unstructured](w.podDefaults.GetIndexer(), indexSources, team)
	if err != nil {
		return err
	}
	copies, err := byIndex[*unstructured.Unstructured](w.podDefaults.GetIndexer(), indexCopies, team)
	if err != nil {
		return err
	}
	users, err := byIndex[*corev1.Namespace](w.namespaces.GetIndexer(), indexUserTeam, team)
	if err != nil {
		return err
	}

	_, shadowed := poddefaults.Sources(team, sources)
	for _, s := range shadowed {
		log.Warn().Str(logging.KeyNamespace, s.GetNamespace()).Str(logging.KeyName, s.GetName()).
			Msg("team poddefault not copied: another team poddefault of the same name for this team wins")
	}
	desired := poddefaults.Desired(team, sources, users)
	changes := poddefaults.Plan(team, desired, w.lookup, copies)
	for _, c := range changes.Conflicts {
		w.conflicts.Inc()
		ev := log.Debug()
		version := string(c.Existing.GetUID()) + "/" + c.Existing.GetResourceVersion() + "/" + c.Copy.Source
		if prev, loaded := w.reported.Swap(c.Copy.Key(), version); !loaded || prev != version {
			ev = log.Warn()
		}
		ev.Str(logging.KeyNamespace, c.Copy.Namespace).Str(logging.KeyName, c.Copy.Name).Str("source", c.Copy.Source).
			Msg("conflict: a poddefault the watcher did not make holds the name of a team poddefault; not overwriting it")
	}
	if changes.Empty() {
		log.Debug().Int("copies", len(desired)).Msg("team's copies are up to date")
		w.state.Record(w.podDefaults.LastSyncResourceVersion())
		return nil
	}

	var (
		mu      sync.Mutex
		errs    []error
		created atomic.Int32
		updated atomic.Int32
		deleted atomic.Int32
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	var g errgroup.Group
	g.SetLimit(w.opts.Concurrency)
	for _, c := range changes.Create {
		g.Go(func() error {
			if ok, err := w.create(ctx, c); err != nil {
				fail(err)
			} else if ok {
				created.Add(1)
			}
			return nil
		})
	}
	for _, u := range changes.Update {
		g.Go(func() error {
			if ok, err := w.update(ctx, u); err != nil {
				fail(err)
			} else if ok {
				updated.Add(1)
			}
			return nil
		})
	}
	for _, d := range changes.Delete {
		g.Go(func() error {
			if ok, err := w.delete(ctx, d); err != nil {
				fail(err)
			} else if ok {
				deleted.Add(1)
			}
			return nil
		})
	}
	_ = g.Wait() // the functions never return an error; failures are in errs

	log.Info().Int("created", int(created.Load())).Int("updated", int(updated.Load())).Int("deleted", int(deleted.Load())).
		Int("failed", len(errs)).Int("conflicts", len(changes.Conflicts)).Int("copies", len(desired)).
		Dur(logging.KeyDuration, time.Since(start)).Msg("reconciled team poddefault copies")
	w.state.Record(w.podDefaults.LastSyncResourceVersion())
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d writes for team %s failed; first: %w",
			len(errs), len(changes.Create)+len(changes.Update)+len(changes.Delete), team, errs[0])
	}
	return nil
}

func (w *Watcher) lookup(namespace, name string) *unstructured.Unstructured {
	obj, ok, err := w.podDefaults.GetIndexer().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	u, _ := obj.(*unstructured.Unstructured)
	return u
}

// create creates a copy. AlreadyExists means the cache is behind: the object's own event
// brings the team back if it is not what it should be.
func (w *Watcher) create(ctx context.Context, c poddefaults.Copy) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.CallTimeout)
	defer cancel()
	_, err := w.dynamic.Resource(poddefaults.GVR).Namespace(c.Namespace).Create(ctx, c.Object(), metav1.CreateOptions{FieldManager: Name})
	switch {
	case apierrors.IsAlreadyExists(err):
		return false, nil
	case apierrors.IsNotFound(err), isNamespaceTerminating(err):
		return false, nil // the namespace is going away: its event brings the team back
	case err != nil:
		return false, fmt.Errorf("create poddefault %s: %w", c.Key(), err)
	}
	w.writes.WithLabelValues("create").Inc()
	w.reported.Delete(c.Key())
	zerolog.Ctx(ctx).Info().Str(logging.KeyNamespace, c.Namespace).Str(logging.KeyName, c.Name).Str("source", c.Source).
		Msg("created poddefault copy")
	return true, nil
}

// update patches a copy from what the cache holds to what it should be. The patch carries the
// cached resourceVersion, so a concurrent change makes it fail (409) and the team is retried.
func (w *Watcher) update(ctx context.Context, u poddefaults.Update) (bool, error) {
	patch, err := mergePatch(u.Existing, u.Object)
	if err != nil {
		return false, fmt.Errorf("patch for poddefault %s: %w", u.Copy.Key(), err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.opts.CallTimeout)
	defer cancel()
	_, err = w.dynamic.Resource(poddefaults.GVR).Namespace(u.Copy.Namespace).Patch(ctx, u.Copy.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: Name})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil // deleted meanwhile; its event brings the team back
	case err != nil:
		return false, fmt.Errorf("patch poddefault %s: %w", u.Copy.Key(), err)
	}
	w.writes.WithLabelValues("update").Inc()
	zerolog.Ctx(ctx).Info().Str(logging.KeyNamespace, u.Copy.Namespace).Str(logging.KeyName, u.Copy.Name).Str("source", u.Copy.Source).
		Msg("updated poddefault copy")
	return true, nil
}

// delete deletes a copy that should not exist, only if it is still the object the decision was
// made on (uid and resourceVersion preconditions).
func (w *Watcher) delete(ctx context.Context, pd *unstructured.Unstructured) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.CallTimeout)
	defer cancel()
	uid, rv := pd.GetUID(), pd.GetResourceVersion()
	err := w.dynamic.Resource(poddefaults.GVR).Namespace(pd.GetNamespace()).Delete(ctx, pd.GetName(),
		metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("delete poddefault %s/%s: %w", pd.GetNamespace(), pd.GetName(), err)
	}
	w.writes.WithLabelValues("delete").Inc()
	zerolog.Ctx(ctx).Info().Str(logging.KeyNamespace, pd.GetNamespace()).Str(logging.KeyName, pd.GetName()).
		Str("source", pd.GetAnnotations()[poddefaults.AnnotationSource]).Msg("deleted poddefault copy")
	return true, nil
}

// Event handlers: each puts the teams an event concerns on the queue. Events about copies that
// are already exactly as desired (the echo of the watcher's own writes) enqueue nothing, so a
// fan-out to 500 namespaces does not trigger 500 more reconciles of the team.

func (w *Watcher) podDefaultUpdated(oldObj, newObj any) {
	if old, ok := oldObj.(*unstructured.Unstructured); ok {
		if t := poddefaults.TeamOf(old); t != "" {
			if n, ok := newObj.(*unstructured.Unstructured); !ok || poddefaults.TeamOf(n) != t {
				w.queue.Add(t) // no longer that team's PodDefault: its copies go
			}
		}
	}
	w.podDefaultEvent(newObj, false)
}

func (w *Watcher) podDefaultEvent(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pd, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	if team := poddefaults.TeamOf(pd); team != "" {
		w.queue.Add(team)
		return
	}
	ns := w.namespace(pd.GetNamespace())
	nsTeam := ""
	if ns != nil && !poddefaults.Terminating(ns) {
		nsTeam = poddefaults.UserTeam(ns)
	}
	if !poddefaults.IsCopy(pd) {
		// A user's own PodDefault: when it goes, a copy may take its name.
		if deleted && nsTeam != "" {
			w.queue.Add(nsTeam)
		}
		return
	}
	want, wanted := w.wanted(nsTeam, ns, pd.GetName())
	copyTeam := poddefaults.CopyTeam(pd)
	if deleted {
		if wanted {
			w.queue.Add(nsTeam)
		}
		return
	}
	if wanted && copyTeam == nsTeam && want.Matches(pd) {
		return
	}
	if nsTeam != "" {
		w.queue.Add(nsTeam)
	}
	if copyTeam != "" && copyTeam != nsTeam {
		w.queue.Add(copyTeam)
	}
}

// wanted returns the copy called name that team wants in namespace ns, if any.
func (w *Watcher) wanted(team string, ns *corev1.Namespace, name string) (poddefaults.Copy, bool) {
	if team == "" || ns == nil {
		return poddefaults.Copy{}, false
	}
	sources, err := byIndex[*unstructured.Unstructured](w.podDefaults.GetIndexer(), indexSources, team)
	if err != nil {
		return poddefaults.Copy{}, false
	}
	for _, c := range poddefaults.Desired(team, sources, []*corev1.Namespace{ns}) {
		if c.Name == name {
			return c, true
		}
	}
	return poddefaults.Copy{}, false
}

func (w *Watcher) namespace(name string) *corev1.Namespace {
	obj, ok, err := w.namespaces.GetIndexer().GetByKey(name)
	if err != nil || !ok {
		return nil
	}
	ns, _ := obj.(*corev1.Namespace)
	return ns
}

func (w *Watcher) namespaceEvent(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if ns, ok := obj.(*corev1.Namespace); ok {
		if t := poddefaults.UserTeam(ns); t != "" {
			w.queue.Add(t)
		}
	}
}

// namespaceUpdated enqueues the old and the new team when a namespace changes team, becomes or
// stops being a user namespace, or starts terminating; resyncs always pass.
func (w *Watcher) namespaceUpdated(oldObj, newObj any) {
	old, ok1 := oldObj.(*corev1.Namespace)
	cur, ok2 := newObj.(*corev1.Namespace)
	if !ok1 || !ok2 {
		w.namespaceEvent(newObj)
		return
	}
	oldTeam, newTeam := poddefaults.UserTeam(old), poddefaults.UserTeam(cur)
	if old.ResourceVersion != cur.ResourceVersion && oldTeam == newTeam &&
		poddefaults.Terminating(old) == poddefaults.Terminating(cur) {
		return
	}
	if oldTeam != "" {
		w.queue.Add(oldTeam)
	}
	if newTeam != "" && newTeam != oldTeam {
		w.queue.Add(newTeam)
	}
}

func sourceIndex(obj any) ([]string, error) {
	pd, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, nil
	}
	if t := poddefaults.TeamOf(pd); t != "" {
		return []string{t}, nil
	}
	return nil, nil
}

func copyIndex(obj any) ([]string, error) {
	pd, ok := obj.(*unstructured.Unstructured)
	if !ok || !poddefaults.IsCopy(pd) {
		return nil, nil
	}
	if t := poddefaults.CopyTeam(pd); t != "" {
		return []string{t}, nil
	}
	return nil, nil
}

func userTeamIndex(obj any) ([]string, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return nil, nil
	}
	if t := poddefaults.UserTeam(ns); t != "" {
		return []string{t}, nil
	}
	return nil, nil
}

func byIndex[T any](indexer cache.Indexer, index, value string) ([]T, error) {
	objs, err := indexer.ByIndex(index, value)
	if err != nil {
		return nil, fmt.Errorf("read index %s=%s: %w", index, value, err)
	}
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out, nil
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

func isNamespaceTerminating(err error) bool {
	return apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}

func stripManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}
