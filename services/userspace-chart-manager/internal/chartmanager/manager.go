// Package chartmanager is the userspace-chart-manager service (SPEC §3.1): it watches orbit
// namespaces and converges, per user namespace, the Helm releases of the team's user charts
// in the team namespace, and tears a team down when its namespace goes. Decisions are made by
// package desired; Helm is reached only through package helm; this package fetches inputs
// from informer caches and carries the decisions out.
package chartmanager

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/health"
	"github.com/orbit-workbench/orbit-controller/pkg/logging"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/desired"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/helm"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/s3store"
)

// Name is the service's name: field manager, Lease name, metric subsystem.
const Name = "userspace-chart-manager"

// profileGVR is Kubeflow's Profile (cluster-scoped).
func profileGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "profiles"}
}

func secretGVR() schema.GroupVersionResource {
	return schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
}

// Index names of the informer caches.
const (
	indexByTeam          = "team"
	indexByUserNamespace = "userNamespace"
)

// key is one unit of work: a user namespace to converge or a team to tear down.
type key struct {
	kind desired.Kind
	// name is the namespace's name.
	name string
	// team is the team of a team namespace (its label survives the namespace's deletion here).
	team string
}

func (k key) String() string {
	if k.kind == desired.KindTeam {
		return "team/" + k.name
	}
	return "user/" + k.name
}

// manager holds the caches and clients the reconcile reads and writes through.
type manager struct {
	opts      Options
	clientset kubernetes.Interface
	dynamic   dynamic.Interface
	helm      *helm.Client
	repos     *helm.Repositories
	metrics   *serviceMetrics
	queue     *controller.Queue[key]
	state     *controller.StateWriter

	namespaces     cache.SharedIndexInformer
	nsLister       corelisters.NamespaceLister
	teamContexts   cache.SharedIndexInformer
	teamCtxLister  corelisters.ConfigMapLister
	releaseRecords cache.SharedIndexInformer

	mu sync.Mutex
	// reported remembers the resource version of incomplete user namespaces already logged,
	// so each problem is one error line, not one per resync.
	reported map[string]string
	// teardownSince is when each team's teardown began waiting for its Profiles.
	teardownSince map[string]time.Time
}

// Run runs the service until ctx ends: informers on every replica (so a standby is warm and
// ready), the work queue only on the leader.
func Run(ctx context.Context, cfg *rest.Config, opts Options, reg prometheus.Registerer, checks *health.Checks) error {
	log := zerolog.Ctx(ctx)
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = Name
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build clientset: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build dynamic client: %w", err)
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build metadata client: %w", err)
	}
	hc, err := helm.NewClient(cfg, helm.ClientOptions{Timeout: opts.InstallTimeout, DiscoveryTTL: helm.DefaultClientOptions().DiscoveryTTL})
	if err != nil {
		return err
	}
	ropts := helm.DefaultRepositoryOptions()
	ropts.IndexTTL, ropts.CacheBytes, ropts.Timeout = opts.IndexTTL, opts.ChartCacheBytes, opts.RepositoryTimeout
	ropts.PlainHTTPHosts = opts.PlainHTTPRegistries
	ropts.ObjectStore = s3store.New(opts.S3)
	ropts.UserAgent = Name

	m := &manager{
		opts:          opts,
		clientset:     cs,
		dynamic:       dyn,
		helm:          hc,
		repos:         helm.NewRepositories(ropts),
		metrics:       newMetrics(reg),
		state:         controller.NewStateWriter(cs, opts.Namespace, controller.StateKeyUserspaceChartManager, Name),
		reported:      map[string]string{},
		teardownSince: map[string]time.Time{},
	}
	qm := controller.NewQueueMetrics(reg, Name)
	m.queue = controller.NewQueue("namespaces", controller.DefaultQueueOptions(), qm, m.reconcile)

	nsFactory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.LabelSelector = desired.LabelSpace
	}))
	nsInformer := nsFactory.Core().V1().Namespaces()
	m.namespaces, m.nsLister = nsInformer.Informer(), nsInformer.Lister()
	cmFactory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
		lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", desired.TeamContextConfigMap).String()
	}))
	cmInformer := cmFactory.Core().V1().ConfigMaps()
	m.teamContexts, m.teamCtxLister = cmInformer.Informer(), cmInformer.Lister()
	// Release records are watched as metadata only: their labels say all the reconcile
	// needs, and the records themselves (chart and manifest, gzipped) stay out of memory.
	m.releaseRecords = metadatainformer.NewFilteredMetadataInformer(meta, secretGVR(), metav1.NamespaceAll, 0,
		cache.Indexers{indexByUserNamespace: indexRecordByUserNamespace},
		func(lo *metav1.ListOptions) {
			lo.LabelSelector = helm.RecordSelector(map[string]string{desired.LabelManagedBy: desired.ManagedBy})
		}).Informer()
	if err := m.namespaces.AddIndexers(cache.Indexers{indexByTeam: indexNamespaceByTeam}); err != nil {
		return fmt.Errorf("index namespaces: %w", err)
	}
	if err := m.addHandlers(ctx); err != nil {
		return err
	}

	var synced atomic.Bool
	checks.AddReadiness("caches", func(context.Context) error {
		if !synced.Load() {
			return errors.New("informer caches not synced")
		}
		return nil
	})
	informerCtx, stopInformers := context.WithCancel(ctx)
	defer stopInformers()
	var informersDone sync.WaitGroup
	for _, inf := range []cache.SharedIndexInformer{m.namespaces, m.teamContexts, m.releaseRecords} {
		informersDone.Go(func() { inf.RunWithContext(informerCtx) })
	}
	defer informersDone.Wait()
	if !cache.WaitForCacheSync(ctx.Done(), m.namespaces.HasSynced, m.teamContexts.HasSynced, m.releaseRecords.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("informer caches did not sync")
	}
	synced.Store(true)
	log.Info().Msg("caches synced")

	return controller.RunLeader(ctx, opts.Leader, cs, opts.Namespace, Name, opts.Identity, m.lead)
}

// lead runs the work queue, the resync and the state writer while this replica leads.
func (m *manager) lead(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { m.state.Run(ctx) })
	wg.Go(func() { m.queue.Run(ctx, m.opts.Workers) })
	m.enqueueAll()
	t := time.NewTicker(m.opts.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-t.C:
			m.enqueueAll()
		}
	}
}

// enqueueAll is the level-triggered sweep: every orbit namespace, and every user namespace
// some release is still labelled with (it may be gone without this replica having seen it).
func (m *manager) enqueueAll() {
	for _, obj := range m.namespaces.GetStore().List() {
		if ns, ok := obj.(*corev1.Namespace); ok {
			m.enqueueNamespace(ns)
		}
	}
	for _, name := range m.releaseRecords.GetIndexer().ListIndexFuncValues(indexByUserNamespace) {
		m.queue.Add(key{kind: desired.KindUser, name: name})
	}
}

func (m *manager) enqueueNamespace(ns *corev1.Namespace) {
	switch desired.KindOf(ns.Labels) {
	case desired.KindUser:
		m.queue.Add(key{kind: desired.KindUser, name: ns.Name})
	case desired.KindTeam:
		m.queue.Add(key{kind: desired.KindTeam, name: ns.Name, team: desired.TeamName(ns.Name, ns.Labels)})
	}
}

func (m *manager) addHandlers(ctx context.Context) error {
	log := zerolog.Ctx(ctx)
	_, err := m.namespaces.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if ns, ok := obj.(*corev1.Namespace); ok {
				m.enqueueNamespace(ns)
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			oldNS, ok1 := oldObj.(*corev1.Namespace)
			newNS, ok2 := newObj.(*corev1.Namespace)
			if !ok1 || !ok2 {
				return
			}
			if desired.KindOf(oldNS.Labels) != desired.KindOf(newNS.Labels) {
				m.enqueueNamespace(oldNS) // it stopped being what it was: undo that too
			}
			m.enqueueNamespace(newNS)
		},
		DeleteFunc: func(obj any) {
			if ns, ok := unwrapTombstone(obj).(*corev1.Namespace); ok {
				m.enqueueNamespace(ns)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch namespaces: %w", err)
	}
	// A changed team context (a fixed repository URL) converges the team's users at once
	// instead of at their next backoff.
	teamChanged := func(obj any) {
		cm, ok := unwrapTombstone(obj).(*corev1.ConfigMap)
		if !ok {
			return
		}
		users, err := m.namespaces.GetIndexer().ByIndex(indexByTeam, cm.Namespace)
		if err != nil {
			log.Warn().Err(err).Str(logging.KeyTeam, cm.Namespace).Msg("list team's user namespaces")
			return
		}
		for _, obj := range users {
			if ns, ok := obj.(*corev1.Namespace); ok {
				m.enqueueNamespace(ns)
			}
		}
	}
	_, err = m.teamContexts.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    teamChanged,
		UpdateFunc: func(_, newObj any) { teamChanged(newObj) },
		DeleteFunc: teamChanged,
	})
	if err != nil {
		return fmt.Errorf("watch team contexts: %w", err)
	}
	return nil
}

func (m *manager) reconcile(ctx context.Context, k key) error {
	switch k.kind {
	case desired.KindUser:
		log := zerolog.Ctx(ctx).With().Str(logging.KeyNamespace, k.name).Logger()
		return m.reconcileUser(log.WithContext(ctx), k.name)
	case desired.KindTeam:
		log := zerolog.Ctx(ctx).With().Str(logging.KeyNamespace, k.name).Str(logging.KeyTeam, k.team).Logger()
		return m.reconcileTeam(log.WithContext(ctx), k)
	}
	return nil
}

// reconcileUser converges one user namespace's releases.
func (m *manager) reconcileUser(ctx context.Context, name string) error {
	existing, err := m.releasesOf(name)
	if err != nil {
		return err
	}
	ns, err := m.nsLister.Get(name)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("read namespace %s from cache: %w", name, err)
	}
	user, present := m.userOf(ctx, ns)
	if !present {
		if ns == nil {
			m.forgetReport(name)
		}
		return m.apply(ctx, desired.Teardown(existing), user, helm.Source{}, nil)
	}
	src, err := m.source(ctx, user.Team)
	if err != nil {
		m.metrics.failures.WithLabelValues(opTeamContext).Inc()
		return err
	}
	charts, err := m.repos.Latest(ctx, src)
	if err != nil {
		m.metrics.failures.WithLabelValues(opRepository).Inc()
		return fmt.Errorf("list charts of team %s: %w", user.Team, err)
	}
	byName := make(map[string]helm.ChartVersion, len(charts))
	names := make([]string, 0, len(charts))
	for _, c := range charts {
		byName[c.Name] = c
		names = append(names, c.Name)
	}
	if err := m.apply(ctx, desired.Plan(user, names, existing), user, src, byName); err != nil {
		return err
	}
	m.state.Record(ns.ResourceVersion)
	return nil
}

// userOf says whether ns is a present, complete user namespace. An incomplete one is logged
// once per version of it and treated as not qualifying (so anything installed for it earlier
// is uninstalled); its next change is a new event, so nothing needs retrying meanwhile.
func (m *manager) userOf(ctx context.Context, ns *corev1.Namespace) (desired.User, bool) {
	if ns == nil || ns.DeletionTimestamp != nil {
		return desired.User{}, false
	}
	u, err := desired.ParseUser(ns.Name, ns.Labels, ns.Annotations)
	var incomplete *desired.IncompleteError
	if errors.As(err, &incomplete) {
		m.mu.Lock()
		seen := m.reported[ns.Name] == ns.ResourceVersion
		m.reported[ns.Name] = ns.ResourceVersion
		m.mu.Unlock()
		if !seen {
			zerolog.Ctx(ctx).Error().Strs("missing", incomplete.Missing).Msg("user namespace lacks required labels or annotations; skipped")
		}
		return desired.User{}, false
	}
	return u, err == nil
}

func (m *manager) forgetReport(name string) {
	m.mu.Lock()
	delete(m.reported, name)
	m.mu.Unlock()
}

// source reads the team context and the repository's credentials.
func (m *manager) source(ctx context.Context, team string) (helm.Source, error) {
	cm, err := m.teamCtxLister.ConfigMaps(team).Get(desired.TeamContextConfigMap)
	if apierrors.IsNotFound(err) {
		return helm.Source{}, fmt.Errorf("team context %s/%s not found", team, desired.TeamContextConfigMap)
	}
	if err != nil {
		return helm.Source{}, fmt.Errorf("read team context %s/%s from cache: %w", team, desired.TeamContextConfigMap, err)
	}
	tc, err := desired.ParseTeamContext(cm.Data)
	if err != nil {
		return helm.Source{}, fmt.Errorf("team context %s/%s: %w", team, desired.TeamContextConfigMap, err)
	}
	src := helm.Source{URL: tc.UserHelmRepository}
	if tc.UserHelmRepositoryCredentialsSecret != "" {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		sec, err := m.clientset.CoreV1().Secrets(team).Get(ctx, tc.UserHelmRepositoryCredentialsSecret, metav1.GetOptions{})
		if err != nil {
			return helm.Source{}, fmt.Errorf("read repository credentials %s/%s: %w", team, tc.UserHelmRepositoryCredentialsSecret, err)
		}
		src.Username, src.Password = string(sec.Data["username"]), string(sec.Data["password"])
	}
	return src, nil
}

// apply carries out the steps; one failing step does not stop the others.
func (m *manager) apply(ctx context.Context, steps []desired.Step, u desired.User, src helm.Source, charts map[string]helm.ChartVersion) error {
	var errs []error
	for _, s := range steps {
		log := zerolog.Ctx(ctx).With().Str(logging.KeyRelease, s.Namespace+"/"+s.Release).Logger()
		ctx := log.WithContext(ctx)
		var err error
		switch s.Op {
		case desired.OpUninstall:
			err = m.uninstall(ctx, s.Namespace, s.Release)
		case desired.OpReinstall:
			err = m.reinstall(ctx, s, u, src, charts[s.Chart])
		case desired.OpInstall:
			err = m.install(ctx, s, u, src, charts[s.Chart])
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *manager) install(ctx context.Context, s desired.Step, u desired.User, src helm.Source, cv helm.ChartVersion) error {
	log := zerolog.Ctx(ctx)
	ch, err := m.repos.Load(ctx, src, cv)
	if err != nil {
		m.metrics.failures.WithLabelValues(opRepository).Inc()
		log.Error().Err(err).Str("chart", cv.Name).Msg("chart not loaded")
		return err
	}
	start := time.Now()
	err = m.helm.Install(ctx, helm.InstallRequest{
		Namespace: s.Namespace,
		Release:   s.Release,
		Chart:     ch,
		Values:    desired.Values(u),
		Labels:    desired.ReleaseLabels(u.Namespace),
	})
	if errors.Is(err, helm.ErrReleaseExists) {
		// The cache had not seen it yet: find out live whether it is ours and healthy.
		err = m.existing(ctx, s, u)
		if err != nil {
			m.metrics.failures.WithLabelValues(opInstall).Inc()
			log.Error().Err(err).Msg("release not installed")
		}
		return err
	}
	if err != nil {
		m.metrics.failures.WithLabelValues(opInstall).Inc()
		log.Error().Err(err).Str("chart", ch.Name).Str("version", ch.Version).Msg("release not installed")
		return err
	}
	m.metrics.installs.Inc()
	m.metrics.installSeconds.Observe(time.Since(start).Seconds())
	log.Info().Str("chart", ch.Name).Str("version", ch.Version).Dur(logging.KeyDuration, time.Since(start)).Msg("installed release")
	return nil
}

// existing judges a release that an install found already there: healthy and ours is done; a
// failed or pending one is retried (with backoff) through a reinstall; another user
// namespace's is a name collision.
func (m *manager) existing(ctx context.Context, s desired.Step, u desired.User) error {
	info, found, err := m.helm.Get(ctx, s.Namespace, s.Release)
	switch {
	case err != nil:
		return err
	case !found:
		return fmt.Errorf("release %s/%s vanished during install", s.Namespace, s.Release)
	case info.Labels[desired.LabelUserNamespace] != u.Namespace:
		return fmt.Errorf("release name %s/%s is taken by user namespace %q", s.Namespace, s.Release, info.Labels[desired.LabelUserNamespace])
	case desired.NeedsReinstall(info.Status):
		return fmt.Errorf("release %s/%s is %s; it will be reinstalled", s.Namespace, s.Release, info.Status)
	}
	return nil
}

// reinstall replaces a release the cache shows failed or pending, after confirming that live:
// the cache may lag behind an install that has since completed.
func (m *manager) reinstall(ctx context.Context, s desired.Step, u desired.User, src helm.Source, cv helm.ChartVersion) error {
	info, found, err := m.helm.Get(ctx, s.Namespace, s.Release)
	if err != nil {
		return err
	}
	if found && !desired.NeedsReinstall(info.Status) {
		return nil
	}
	if found {
		zerolog.Ctx(ctx).Info().Str("status", info.Status).Msg("release left failed or pending; reinstalling")
		if err := m.uninstall(ctx, s.Namespace, s.Release); err != nil {
			return err
		}
	}
	return m.install(ctx, s, u, src, cv)
}

func (m *manager) uninstall(ctx context.Context, namespace, release string) error {
	if err := m.helm.Uninstall(ctx, namespace, release); err != nil {
		m.metrics.failures.WithLabelValues(opUninstall).Inc()
		zerolog.Ctx(ctx).Error().Err(err).Msg("release not uninstalled")
		return err
	}
	m.metrics.uninstalls.Inc()
	zerolog.Ctx(ctx).Info().Msg("uninstalled release")
	return nil
}

// releasesOf lists the releases labelled with a user namespace, one per release (a record
// Secret exists per revision).
func (m *manager) releasesOf(userNamespace string) ([]desired.Release, error) {
	objs, err := m.releaseRecords.GetIndexer().ByIndex(indexByUserNamespace, userNamespace)
	if err != nil {
		return nil, fmt.Errorf("list releases of %s from cache: %w", userNamespace, err)
	}
	latest := map[[2]string]desired.Release{}
	revision := map[[2]string]int{}
	for _, obj := range objs {
		pom, ok := obj.(*metav1.PartialObjectMetadata)
		if !ok {
			continue
		}
		rec, ok := helm.RecordFromSecret(pom.Namespace, pom.Name, pom.Labels)
		if !ok {
			continue
		}
		k := [2]string{rec.Namespace, rec.Release}
		if r, seen := revision[k]; !seen || rec.Revision > r {
			revision[k] = rec.Revision
			latest[k] = desired.Release{Namespace: rec.Namespace, Name: rec.Release, UserNamespace: userNamespace, Status: rec.Status}
		}
	}
	out := make([]desired.Release, 0, len(latest))
	for _, r := range latest {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name })
	return out, nil
}

func indexNamespaceByTeam(obj any) ([]string, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok || desired.KindOf(ns.Labels) != desired.KindUser || ns.Labels[desired.LabelTeam] == "" {
		return nil, nil
	}
	return []string{ns.Labels[desired.LabelTeam]}, nil
}

func indexRecordByUserNamespace(obj any) ([]string, error) {
	pom, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok || pom.Labels[desired.LabelUserNamespace] == "" {
		return nil, nil
	}
	return []string{pom.Labels[desired.LabelUserNamespace]}, nil
}

func unwrapTombstone(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}
