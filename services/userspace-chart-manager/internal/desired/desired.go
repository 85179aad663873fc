// Package desired decides, without any I/O, which Helm releases should exist for a user
// namespace (SPEC §3.1): what a user namespace must carry, what the team context says, how
// a release is named and labelled, and which installs, reinstalls and uninstalls close the gap
// between the releases that exist and those that should.
package desired

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Namespace labels and annotations set by the login hook (SPEC §2).
const (
	LabelSpace      = "orbit/space"
	LabelTeam       = "orbit/team"
	LabelUser       = "orbit/user"
	LabelEnv        = "orbit/env"
	LabelEFS        = "orbit/efs-access-point-id"
	AnnotationOwner = "owner"

	SpaceUser = "user"
	SpaceTeam = "team"
)

// Release labels: they let an uninstall find a user's releases without reading any repository.
const (
	LabelUserNamespace = "orbit/user-namespace"
	LabelManagedBy     = "app.kubernetes.io/managed-by"
	ManagedBy          = "userspace-chart-manager"
)

// Team context (SPEC §2): ConfigMap orbit-team-context in the team namespace, key team.
const (
	TeamContextConfigMap = "orbit-team-context"
	TeamContextKey       = "team"
)

// MaxReleaseNameLength is Helm's limit on release names.
const MaxReleaseNameLength = 53

// Kind is what an orbit namespace is for.
type Kind int

const (
	// KindOther is a namespace this service ignores.
	KindOther Kind = iota
	// KindUser is a UserSpace: it gets the team's user charts.
	KindUser
	// KindTeam is a TeamSpace: its deletion tears the team down.
	KindTeam
)

// KindOf classifies a namespace by its orbit/space label.
func KindOf(labels map[string]string) Kind {
	switch labels[LabelSpace] {
	case SpaceUser:
		return KindUser
	case SpaceTeam:
		return KindTeam
	}
	return KindOther
}

// TeamName is the team a team namespace stands for: its orbit/team label, else its name (the
// team namespace is named after the team).
func TeamName(namespace string, labels map[string]string) string {
	if t := labels[LabelTeam]; t != "" {
		return t
	}
	return namespace
}

// User is a user namespace with everything its charts need.
type User struct {
	Namespace        string
	Team             string
	Env              string
	User             string
	Email            string
	EFSAccessPointID string
}

// ErrNotUserSpace says a namespace is not labelled orbit/space=user.
var ErrNotUserSpace = errors.New("not a user namespace")

// IncompleteError says a namespace labelled orbit/space=user lacks what a user namespace needs.
type IncompleteError struct {
	Namespace string
	Missing   []string
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("user namespace %s lacks %s", e.Namespace, strings.Join(e.Missing, ", "))
}

// ParseUser reads a user namespace's labels and annotations. It returns ErrNotUserSpace for a
// namespace of another kind and an *IncompleteError naming every missing label or annotation.
func ParseUser(namespace string, labels, annotations map[string]string) (User, error) {
	if KindOf(labels) != KindUser {
		return User{}, ErrNotUserSpace
	}
	u := User{
		Namespace:        namespace,
		Team:             labels[LabelTeam],
		Env:              labels[LabelEnv],
		User:             labels[LabelUser],
		Email:            annotations[AnnotationOwner],
		EFSAccessPointID: labels[LabelEFS],
	}
	var missing []string
	for _, f := range []struct{ what, value string }{
		{"label " + LabelEnv, u.Env},
		{"label " + LabelTeam, u.Team},
		{"label " + LabelUser, u.User},
		{"annotation " + AnnotationOwner, u.Email},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.what)
		}
	}
	if len(missing) > 0 {
		return User{}, &IncompleteError{Namespace: namespace, Missing: missing}
	}
	return u, nil
}

// Values are the chart values every user release is installed with.
func Values(u User) map[string]any {
	return map[string]any{
		"user":         u.User,
		"user_email":   u.Email,
		"namespace":    u.Namespace,
		"user_efsapid": u.EFSAccessPointID,
	}
}

// ReleaseLabels are the labels on the release records of a user namespace.
func ReleaseLabels(userNamespace string) map[string]string {
	return map[string]string{LabelUserNamespace: userNamespace, LabelManagedBy: ManagedBy}
}

// ReleaseName is `<namespace>-<chart>`, or, when that is longer than Helm allows or not a valid
// release name, a readable prefix (as much of the namespace as fits, then the chart) and a short
// hash of the pair, so the same pair always gets the same name and different pairs do not
// collide.
func ReleaseName(namespace, chart string) string {
	name := namespace + "-" + chart
	if len(name) <= MaxReleaseNameLength && validReleaseName(name) {
		return name
	}
	sum := sha256.Sum256([]byte(namespace + "/" + chart))
	suffix := hex.EncodeToString(sum[:])[:8]
	budget := MaxReleaseNameLength - len(suffix) - 1
	ns, ch := sanitize(namespace), sanitize(chart)
	var prefix string
	if keep := budget - len(ch) - 1; ch != "" && keep >= 8 {
		prefix = trimDashes(truncate(ns, keep)) + "-" + ch
	} else {
		prefix = truncate(sanitize(name), budget)
	}
	prefix = trimDashes(prefix)
	if prefix == "" {
		return "r-" + suffix
	}
	return prefix + "-" + suffix
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func trimDashes(s string) string { return strings.Trim(s, "-") }

// sanitize keeps lowercase letters, digits and dashes; anything else becomes a dash.
func sanitize(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !isAlnum(c) {
			b[i] = '-'
		}
	}
	return trimDashes(string(b))
}

func isAlnum(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') }

// validReleaseName is Helm's rule: lowercase DNS labels joined by dots.
func validReleaseName(s string) bool {
	if s == "" {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || !isAlnum(label[0]) || !isAlnum(label[len(label)-1]) {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

// TeamContext is the part of the team context this service reads.
type TeamContext struct {
	// UserHelmRepository is the repository of per-user charts: http(s)://, oci:// or s3://.
	UserHelmRepository string `json:"UserHelmRepository"`
	// UserHelmRepositoryCredentialsSecret optionally names a Secret in the team namespace with
	// keys `username` and `password`, used for HTTP basic auth and registry login (s3:// uses
	// the controller's AWS identity instead).
	UserHelmRepositoryCredentialsSecret string `json:"UserHelmRepositoryCredentialsSecret,omitempty"`
}

// ParseTeamContext decodes the team context ConfigMap's data.
func ParseTeamContext(data map[string]string) (TeamContext, error) {
	raw, ok := data[TeamContextKey]
	if !ok || strings.TrimSpace(raw) == "" {
		return TeamContext{}, fmt.Errorf("team context has no key %q", TeamContextKey)
	}
	var tc TeamContext
	if err := json.Unmarshal([]byte(raw), &tc); err != nil {
		return TeamContext{}, fmt.Errorf("team context key %q is not a JSON object: %w", TeamContextKey, err)
	}
	tc.UserHelmRepository = strings.TrimSpace(tc.UserHelmRepository)
	if tc.UserHelmRepository == "" {
		return TeamContext{}, errors.New("team context has no UserHelmRepository")
	}
	u, err := url.Parse(tc.UserHelmRepository)
	if err != nil {
		return TeamContext{}, fmt.Errorf("team context UserHelmRepository %q: %w", tc.UserHelmRepository, err)
	}
	switch u.Scheme {
	case "http", "https", "oci", "s3":
	default:
		return TeamContext{}, fmt.Errorf("team context UserHelmRepository %q: scheme must be http, https, oci or s3", tc.UserHelmRepository)
	}
	if u.Host == "" {
		return TeamContext{}, fmt.Errorf("team context UserHelmRepository %q has no host or bucket", tc.UserHelmRepository)
	}
	return tc, nil
}

// Helm release statuses, as Helm records them.
const (
	StatusDeployed        = "deployed"
	StatusSuperseded      = "superseded"
	StatusFailed          = "failed"
	StatusPendingInstall  = "pending-install"
	StatusPendingUpgrade  = "pending-upgrade"
	StatusPendingRollback = "pending-rollback"
	StatusUninstalling    = "uninstalling"
	StatusUninstalled     = "uninstalled"
)

// NeedsReinstall says a release was left failed or half-done and must be uninstalled and
// installed again (installed releases are never upgraded: some charts cannot be).
func NeedsReinstall(status string) bool {
	switch status {
	case StatusFailed, StatusPendingInstall, StatusPendingUpgrade, StatusPendingRollback,
		StatusUninstalling, StatusUninstalled:
		return true
	}
	return false
}

// Release is a release record found in the cluster.
type Release struct {
	// Namespace is where the record lives (a team namespace).
	Namespace string
	Name      string
	// UserNamespace is the user namespace it was installed for (its release label).
	UserNamespace string
	Status        string
}

// Op is what a step does.
type Op string

// Steps a reconcile can take.
const (
	OpInstall   Op = "install"
	OpReinstall Op = "reinstall"
	OpUninstall Op = "uninstall"
)

// Step is one release operation.
type Step struct {
	Op Op
	// Namespace is the release's namespace (the team namespace).
	Namespace string
	Release   string
	// Chart is set for installs.
	Chart string
}

// Plan lists the steps that converge a present user namespace: every chart of the team's
// repository gets a release in the team namespace unless a healthy one exists, a failed or
// pending one is reinstalled, and releases of this user left in another team's namespace (the
// user changed teams) are uninstalled. Releases of charts no longer in the repository are kept:
// removing a chart from the repository is not a reason to delete a user's data.
func Plan(u User, charts []string, existing []Release) []Step {
	have := map[string]Release{}
	var steps []Step
	for _, r := range existing {
		if r.UserNamespace != "" && r.UserNamespace != u.Namespace {
			continue
		}
		if r.Namespace != u.Team {
			steps = append(steps, Step{Op: OpUninstall, Namespace: r.Namespace, Release: r.Name})
			continue
		}
		have[r.Name] = r
	}
	seen := map[string]bool{}
	for _, chart := range charts {
		if chart == "" || seen[chart] {
			continue
		}
		seen[chart] = true
		name := ReleaseName(u.Namespace, chart)
		r, ok := have[name]
		switch {
		case !ok:
			steps = append(steps, Step{Op: OpInstall, Namespace: u.Team, Release: name, Chart: chart})
		case NeedsReinstall(r.Status):
			steps = append(steps, Step{Op: OpReinstall, Namespace: u.Team, Release: name, Chart: chart})
		}
	}
	sortSteps(steps)
	return steps
}

// Teardown lists the uninstalls for a user namespace that is gone, Terminating or no longer
// qualifies: every release labelled with it.
func Teardown(existing []Release) []Step {
	seen := map[[2]string]bool{}
	var steps []Step
	for _, r := range existing {
		k := [2]string{r.Namespace, r.Name}
		if seen[k] {
			continue
		}
		seen[k] = true
		steps = append(steps, Step{Op: OpUninstall, Namespace: r.Namespace, Release: r.Name})
	}
	sortSteps(steps)
	return steps
}

// sortSteps puts uninstalls first (they free names and resources), then by namespace and name.
func sortSteps(steps []Step) {
	rank := func(op Op) int {
		if op == OpUninstall {
			return 0
		}
		return 1
	}
	sort.SliceStable(steps, func(i, j int) bool {
		a, b := steps[i], steps[j]
		if rank(a.Op) != rank(b.Op) {
			return rank(a.Op) < rank(b.Op)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Release < b.Release
	})
}
