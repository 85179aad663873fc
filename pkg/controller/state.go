package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// StateConfigMap is the shared state ConfigMap of SPEC §2.
const StateConfigMap = "orbit-controller-state"

// State keys, one per watcher.
const (
	StateKeyUserspaceChartManager = "userspaceChartManager"
	StateKeyPodSettingsWatcher    = "podsettingsWatcher"
	StateKeyPodDefaultsWatcher    = "poddefaultsWatcher"
	StateKeyImageReplications     = "imagereplicationsWatcher"
)

// State is the JSON value of one key. UpdatedAt changes on every write, so a reader (the
// pod-modifier) sees a change even when the resource version did not move.
type State struct {
	LastResourceVersion string    `json:"lastResourceVersion"`
	UpdatedAt           time.Time `json:"updatedAt"`
}

// StateWriter writes one key of the state ConfigMap, debounced: however often Record is
// called, at most one write per Interval, and the last recorded value always gets written.
type StateWriter struct {
	client       kubernetes.Interface
	namespace    string
	key          string
	fieldManager string
	interval     time.Duration
	now          func() time.Time

	mu      sync.Mutex
	pending *string
	wake    chan struct{}
	writes  int
}

// NewStateWriter returns a writer for key in namespace's state ConfigMap.
func NewStateWriter(client kubernetes.Interface, namespace, key, fieldManager string) *StateWriter {
	return &StateWriter{
		client: client, namespace: namespace, key: key, fieldManager: fieldManager,
		interval: time.Second, now: time.Now, wake: make(chan struct{}, 1),
	}
}

// Record notes the latest resource version handled; the write follows within Interval.
func (w *StateWriter) Record(resourceVersion string) {
	w.mu.Lock()
	w.pending = &resourceVersion
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Writes counts the ConfigMap writes done so far.
func (w *StateWriter) Writes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

// Run writes recorded values until ctx ends, then flushes the last one.
func (w *StateWriter) Run(ctx context.Context) {
	log := zerolog.Ctx(ctx)
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := w.flush(flushCtx); err != nil {
				log.Warn().Err(err).Str("key", w.key).Msg("final state write failed")
			}
			cancel()
			return
		case <-w.wake:
		}
		if wait := w.interval - w.now().Sub(last); wait > 0 {
			select {
			case <-ctx.Done():
				continue // flushed by the next loop turn
			case <-time.After(wait):
			}
		}
		if err := w.flush(ctx); err != nil {
			log.Warn().Err(err).Str("key", w.key).Msg("state write failed; retrying")
			select { // keep the value pending and try again after the interval
			case w.wake <- struct{}{}:
			default:
			}
		}
		last = w.now()
	}
}

func (w *StateWriter) flush(ctx context.Context) error {
	w.mu.Lock()
	rv := w.pending
	w.pending = nil
	w.mu.Unlock()
	if rv == nil {
		return nil
	}
	if err := w.write(ctx, *rv); err != nil {
		w.mu.Lock()
		if w.pending == nil {
			w.pending = rv
		}
		w.mu.Unlock()
		return err
	}
	w.mu.Lock()
	w.writes++
	w.mu.Unlock()
	return nil
}

func (w *StateWriter) write(ctx context.Context, rv string) error {
	value, err := json.Marshal(State{LastResourceVersion: rv, UpdatedAt: w.now().UTC()})
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	patch, err := json.Marshal(map[string]any{"data": map[string]string{w.key: string(value)}})
	if err != nil {
		return fmt.Errorf("encode state patch: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cms := w.client.CoreV1().ConfigMaps(w.namespace)
	_, err = cms.Patch(ctx, StateConfigMap, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: w.fieldManager})
	if apierrors.IsNotFound(err) {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: StateConfigMap, Namespace: w.namespace},
			Data:       map[string]string{w.key: string(value)},
		}
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: w.fieldManager})
		if apierrors.IsAlreadyExists(err) { // another watcher created it first
			_, err = cms.Patch(ctx, StateConfigMap, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: w.fieldManager})
		}
	}
	if err != nil {
		return fmt.Errorf("patch %s/%s key %s: %w", w.namespace, StateConfigMap, w.key, err)
	}
	return nil
}

// ReadState decodes one key of a state ConfigMap; a missing key is the zero State.
func ReadState(cm *corev1.ConfigMap, key string) (State, error) {
	var s State
	raw, ok := cm.Data[key]
	if !ok || raw == "" {
		return s, nil
	}
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return s, fmt.Errorf("decode state key %s: %w", key, err)
	}
	return s, nil
}
