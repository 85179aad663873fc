// Package cache keeps everything the pod-modifier needs to answer an admission request in
// memory: Namespaces and PodSettings from informers, and each team's PodSettings compiled
// into a podsetting.Set whenever they change — so the request path makes no API call.
package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/metrics"
	"github.com/orbit-workbench/orbit-controller/pkg/orbitclient"
	"github.com/orbit-workbench/orbit-controller/services/pod-modifier/internal/podsetting"
)

// Store serves Namespaces and compiled PodSettings from memory.
type Store struct {
	kube      kubernetes.Interface
	orbit     *orbitclient.Client
	stateNS   string
	log       zerolog.Logger
	nsLister  corelisters.NamespaceLister
	nsSynced  cache.InformerSynced
	psIndexer cache.Indexer
	psSynced  cache.InformerSynced
	run       []func(<-chan struct{})
	// ctx is Run's context, for the re-lists that state signals start.
	ctx context.Context

	mu        sync.RWMutex
	sets      map[string]*podsetting.Set
	lastState string

	liveReads prometheus.Counter
	refreshes *prometheus.CounterVec
	empty     *podsetting.Set
}

// New wires the informers; Run starts them.
func New(kube kubernetes.Interface, orbit *orbitclient.Client, stateNamespace string, reg prometheus.Registerer, log zerolog.Logger) (*Store, error) {
	s := &Store{
		kube: kube, orbit: orbit, stateNS: stateNamespace, log: log,
		sets:  map[string]*podsetting.Set{},
		empty: podsetting.NewSet(nil),
		liveReads: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "pod_modifier", Name: "namespace_live_reads_total",
			Help: "Namespaces read from the API server on the request path because the cache did not have them yet.",
		}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "pod_modifier", Name: "podsetting_cache_refreshes_total",
			Help: "Rebuilds of compiled PodSettings by trigger (event, state).",
		}, []string{"trigger"}),
	}
	reg.MustRegister(s.liveReads, s.refreshes)

	nsFactory := informers.NewSharedInformerFactory(kube, 0)
	nsInf := nsFactory.Core().V1().Namespaces()
	s.nsLister, s.nsSynced = nsInf.Lister(), nsInf.Informer().HasSynced
	s.run = append(s.run, nsFactory.Start)

	psInf := orbit.PodSettings("").Informer(0)
	s.psIndexer, s.psSynced = psInf.GetIndexer(), psInf.HasSynced
	if _, err := psInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.rebuild(namespaceOf(obj)) },
		UpdateFunc: func(_, obj any) { s.rebuild(namespaceOf(obj)) },
		DeleteFunc: func(obj any) { s.rebuild(namespaceOf(obj)) },
	}); err != nil {
		return nil, fmt.Errorf("podsetting event handler: %w", err)
	}
	s.run = append(s.run, func(stop <-chan struct{}) { go psInf.Run(stop) })

	// The podsettings-watcher bumps its key of the state ConfigMap after every change it
	// handles; a change there makes us re-list PodSettings, a safety net should our own watch
	// ever fall behind.
	stateFactory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(stateNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", controller.StateConfigMap).String()
		}))
	stateInf := stateFactory.Core().V1().ConfigMaps().Informer()
	if _, err := stateInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.stateChanged(obj) },
		UpdateFunc: func(_, obj any) { s.stateChanged(obj) },
	}); err != nil {
		return nil, fmt.Errorf("state event handler: %w", err)
	}
	s.run = append(s.run, stateFactory.Start)
	return s, nil
}

func namespaceOf(obj any) string {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if ps, ok := obj.(*orbitv1.PodSetting); ok {
		return ps.Namespace
	}
	return ""
}

// Run starts the informers and waits for their first sync; it returns when ctx ends.
func (s *Store) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	for _, start := range s.run {
		start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), s.nsSynced, s.psSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return errors.New("caches did not sync")
	}
	s.log.Info().Msg("caches synced")
	<-ctx.Done()
	return nil
}

// Synced reports whether the first list of Namespaces and PodSettings is in memory (readiness).
func (s *Store) Synced(context.Context) error {
	if s.nsSynced() && s.psSynced() {
		return nil
	}
	return errors.New("namespace and podsetting caches not synced yet")
}

// Settings returns the compiled PodSettings of a namespace (the team namespace).
func (s *Store) Settings(namespace string) *podsetting.Set {
	s.mu.RLock()
	set := s.sets[namespace]
	s.mu.RUnlock()
	if set == nil {
		return s.empty
	}
	return set
}

// Namespace returns a Namespace from the cache. One created a moment before its first Pod may
// not be there yet: it is read live once, and counted.
func (s *Store) Namespace(ctx context.Context, name string) (*corev1.Namespace, error) {
	ns, err := s.nsLister.Get(name)
	if err == nil {
		return ns, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("namespace %s from cache: %w", name, err)
	}
	s.liveReads.Inc()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ns, err = s.kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("read namespace %s: %w", name, err)
	}
	return ns, nil
}

// rebuild compiles a namespace's PodSettings from the informer's store.
func (s *Store) rebuild(namespace string) {
	objs, err := s.psIndexer.ByIndex(cache.NamespaceIndex, namespace)
	if err != nil {
		s.log.Error().Err(err).Str("namespace", namespace).Msg("index podsettings")
		return
	}
	settings := make([]*orbitv1.PodSetting, 0, len(objs))
	for _, o := range objs {
		if ps, ok := o.(*orbitv1.PodSetting); ok {
			settings = append(settings, ps)
		}
	}
	s.replace(namespace, settings)
	s.refreshes.WithLabelValues("event").Inc()
}

func (s *Store) replace(namespace string, settings []*orbitv1.PodSetting) {
	var set *podsetting.Set
	if len(settings) > 0 {
		set = podsetting.NewSet(settings)
	}
	s.mu.Lock()
	if set == nil {
		delete(s.sets, namespace)
	} else {
		s.sets[namespace] = set
	}
	s.mu.Unlock()
}

func (s *Store) stateChanged(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return
	}
	value := cm.Data[controller.StateKeyPodSettingsWatcher]
	s.mu.Lock()
	changed := value != s.lastState
	first := s.lastState == ""
	s.lastState = value
	ctx := s.ctx
	s.mu.Unlock()
	if !changed || first && value == "" {
		return
	}
	go s.relist(ctx)
}

// relist reads every PodSetting live and recompiles every namespace from that list.
func (s *Store) relist(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := s.orbit.PodSettings("").List(ctx, metav1.ListOptions{})
	if err != nil {
		s.log.Warn().Err(err).Msg("re-list podsettings after state change")
		return
	}
	byNS := map[string][]*orbitv1.PodSetting{}
	for i := range list.Items {
		ps := &list.Items[i]
		byNS[ps.Namespace] = append(byNS[ps.Namespace], ps)
	}
	s.mu.RLock()
	for ns := range s.sets {
		if _, ok := byNS[ns]; !ok {
			byNS[ns] = nil
		}
	}
	s.mu.RUnlock()
	for ns, settings := range byNS {
		s.replace(ns, settings)
	}
	s.refreshes.WithLabelValues("state").Inc()
	s.log.Debug().Int("podSettings", len(list.Items)).Msg("podsetting cache refreshed from state signal")
}
