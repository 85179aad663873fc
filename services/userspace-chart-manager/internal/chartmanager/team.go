package chartmanager

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/orbit-workbench/orbit-controller/pkg/logging"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/desired"
)

// profilePoll is how often a teardown looks again for Profiles still being deleted.
const profilePoll = time.Second

// reconcileTeam tears a team down once its namespace is deleted or Terminating: the team's
// Kubeflow Profiles first (Kubeflow cleans up after them), then, once they are gone or
// ProfileWait has passed, every namespace labelled with the team. Waiting is a requeue, not a
// blocked worker.
func (m *manager) reconcileTeam(ctx context.Context, k key) error {
	ns, err := m.nsLister.Get(k.name)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("read namespace %s from cache: %w", k.name, err)
	}
	if ns == nil {
		// Out of the cache can also mean it merely lost its orbit/space label: only a deleted
		// or Terminating namespace tears the team down.
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		live, err := m.clientset.CoreV1().Namespaces().Get(gctx, k.name, metav1.GetOptions{})
		cancel()
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("read namespace %s: %w", k.name, err)
		}
		if err == nil {
			ns = live
		}
	}
	if ns != nil && ns.DeletionTimestamp == nil {
		m.mu.Lock()
		delete(m.teardownSince, k.team)
		m.mu.Unlock()
		return nil // the team is alive (or its namespace stopped being a team's, which is no deletion)
	}
	log := zerolog.Ctx(ctx)
	remaining, err := m.deleteProfiles(ctx, k.team)
	if err != nil {
		m.metrics.failures.WithLabelValues(opTeardown).Inc()
		return err
	}
	if remaining > 0 {
		m.mu.Lock()
		since, waiting := m.teardownSince[k.team]
		if !waiting {
			since = time.Now()
			m.teardownSince[k.team] = since
		}
		m.mu.Unlock()
		if time.Since(since) < m.opts.ProfileWait {
			log.Debug().Int("profiles", remaining).Msg("waiting for the team's Profiles to go")
			m.queue.AddAfter(k, profilePoll)
			return nil
		}
		log.Warn().Int("profiles", remaining).Dur("waited", time.Since(since)).Msg("team's Profiles still present; deleting its namespaces anyway")
	}
	deleted, err := m.deleteTeamNamespaces(ctx, k.team)
	if err != nil {
		m.metrics.failures.WithLabelValues(opTeardown).Inc()
		return err
	}
	m.mu.Lock()
	delete(m.teardownSince, k.team)
	m.mu.Unlock()
	if deleted > 0 {
		log.Info().Int("namespaces", deleted).Msg("team torn down")
	}
	return nil
}

// deleteProfiles deletes the team's Profiles and says how many still exist.
func (m *manager) deleteProfiles(ctx context.Context, team string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	profiles := m.dynamic.Resource(profileGVR())
	sel := labels.SelectorFromSet(labels.Set{desired.LabelTeam: team}).String()
	list, err := profiles.List(ctx, metav1.ListOptions{LabelSelector: sel})
	if apierrors.IsNotFound(err) {
		return 0, nil // Kubeflow is not installed
	}
	if err != nil {
		return 0, fmt.Errorf("list Profiles of team %s: %w", team, err)
	}
	for _, p := range list.Items {
		if p.GetDeletionTimestamp() != nil {
			continue
		}
		err := profiles.Delete(ctx, p.GetName(), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("delete Profile %s of team %s: %w", p.GetName(), team, err)
		}
		zerolog.Ctx(ctx).Info().Str(logging.KeyName, p.GetName()).Msg("deleted Profile")
	}
	if len(list.Items) == 0 {
		return 0, nil
	}
	list, err = profiles.List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return 0, fmt.Errorf("list Profiles of team %s: %w", team, err)
	}
	return len(list.Items), nil
}

// deleteTeamNamespaces deletes every namespace labelled with the team that is not already
// Terminating, and says how many it deleted.
func (m *manager) deleteTeamNamespaces(ctx context.Context, team string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sel := labels.SelectorFromSet(labels.Set{desired.LabelTeam: team}).String()
	list, err := m.clientset.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return 0, fmt.Errorf("list namespaces of team %s: %w", team, err)
	}
	deleted := 0
	for _, ns := range list.Items {
		if ns.DeletionTimestamp != nil {
			continue
		}
		err := m.clientset.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return deleted, fmt.Errorf("delete namespace %s of team %s: %w", ns.Name, team, err)
		}
		deleted++
		zerolog.Ctx(ctx).Info().Str(logging.KeyName, ns.Name).Msg("deleted team namespace")
	}
	return deleted, nil
}
