package chartmanager_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/orbit-workbench/orbit-controller/pkg/controller"
	"github.com/orbit-workbench/orbit-controller/pkg/testenv"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/chartmanager"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/desired"
	"github.com/orbit-workbench/orbit-controller/services/userspace-chart-manager/internal/helm/helmtest"
)

// Every repository kind: a new user namespace gets a release of each chart (newest version,
// development versions included) in the team namespace, with the user's values and the
// release labels; deleting the namespace uninstalls them.
func TestInstallsAndUninstallsPerRepositoryKind(t *testing.T) {
	alpha, alphaDev, beta := chart(t, "alpha", "0.1.0"), chart(t, "alpha", "0.2.0-dev.1"), chart(t, "beta", "1.0.0")
	archives := []helmtest.Archive{alpha, alphaDev, beta}

	httpRepo := helmtest.NewRepo(t, archives...)
	reg := helmtest.NewRegistry(t)
	for _, a := range archives {
		reg.Push(t, "orbit/charts", a)
	}
	s3 := helmtest.NewS3(t)
	for _, a := range archives {
		s3.Put("user-charts", "lake/"+a.File(), a.Data)
	}
	s3.Put("user-charts", "lake/index.yaml", helmtest.Index(t, archives, "s3://user-charts/lake"))

	opts := defaultTestOptions(t)
	opts.PlainHTTPRegistries = []string{reg.Host}
	opts.S3.EndpointURL, opts.S3.PathStyle = s3.Endpoint, true
	svc := startService(t, opts)

	for _, tc := range []struct{ kind, url string }{
		{"http", httpRepo.URL},
		{"oci", "oci://" + reg.Host + "/orbit/charts"},
		{"s3", "s3://user-charts/lake"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			teamNS := team(t, tc.url)
			userNS := user(t, teamNS, "alice", "alice@example.com", map[string]string{"orbit/efs-access-point-id": "fsap-0123"})
			bobNS := user(t, teamNS, "bob", "bob@example.com", nil)
			waitReleases(t, teamNS, 60*time.Second, userNS+"-alpha", userNS+"-beta", bobNS+"-alpha", bobNS+"-beta")

			recs, err := records(t.Context(), teamNS)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{userNS + "-alpha", userNS + "-beta"} {
				if r := recs[name]; r.userNamespace != userNS || r.managedBy != "userspace-chart-manager" {
					t.Errorf("release %s labels: user namespace %q, managed by %q", name, r.userNamespace, r.managedBy)
				}
			}
			for chartName, version := range map[string]string{"alpha": "0.2.0-dev.1", "beta": "1.0.0"} {
				cm, err := configMap(t.Context(), userNS, chartName+"-settings")
				if err != nil {
					t.Fatalf("chart %s's ConfigMap in %s: %v", chartName, userNS, err)
				}
				want := map[string]string{"user": "alice", "userEmail": "alice@example.com", "efsAccessPointID": "fsap-0123",
					"release": userNS + "-" + chartName, "chartVersion": version}
				for k, v := range want {
					if cm.Data[k] != v {
						t.Errorf("%s/%s data %s = %q, want %q", userNS, cm.Name, k, cm.Data[k], v)
					}
				}
			}
			if cm, err := configMap(t.Context(), bobNS, "alpha-settings"); err != nil || cm.Data["efsAccessPointID"] != "" {
				t.Errorf("bob's alpha ConfigMap: %v, efs %q (want empty)", err, cm.Data["efsAccessPointID"])
			}

			deleteNamespace(t, userNS)
			waitReleases(t, teamNS, 60*time.Second, bobNS+"-alpha", bobNS+"-beta")
		})
	}
	if n := svc.counter(t, "orbit_userspace_chart_manager_installs_total"); n < 12 {
		t.Errorf("installs_total = %v, want ≥ 12", n)
	}
	if n := svc.counter(t, "orbit_userspace_chart_manager_uninstalls_total"); n < 6 {
		t.Errorf("uninstalls_total = %v, want ≥ 6", n)
	}
	if n := svc.counter(t, "orbit_userspace_chart_manager_install_duration_seconds"); n < 12 {
		t.Errorf("install latency observations = %v, want ≥ 12", n)
	}
}

// Deleting a team namespace deletes the team's Profiles, waits for them to be gone (bounded),
// then deletes every namespace labelled with the team — and touches no other team.
func TestTeamDeletionRemovesProfilesThenNamespaces(t *testing.T) {
	repo := helmtest.NewRepo(t, chart(t, "alpha", "0.1.0"))
	opts := defaultTestOptions(t)
	opts.ProfileWait = 6 * time.Second
	startService(t, opts)

	// Team A's Profile is held by a finalizer until the test releases it; team B's forever.
	teamA, teamB, other := team(t, repo.URL), team(t, repo.URL), team(t, repo.URL)
	usersA := []string{user(t, teamA, "u1", "u1@x", nil), user(t, teamA, "u2", "u2@x", nil)}
	plainA := env.CreateNamespace(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamA + "-scratch", Labels: map[string]string{"orbit/team": teamA}}}).Name
	usersB := []string{user(t, teamB, "u1", "u1@x", nil)}
	otherUser := user(t, other, "u1", "u1@x", nil)
	createProfile(t, teamA+"-p1", teamA, "test.orbit/hold")
	createProfile(t, teamA+"-p2", teamA)
	createProfile(t, teamB+"-p1", teamB, "test.orbit/hold")
	createProfile(t, other+"-p1", other)
	waitReleases(t, teamA, 60*time.Second, usersA[0]+"-alpha", usersA[1]+"-alpha")

	deleteNamespace(t, teamA)
	deleteNamespace(t, teamB)
	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		p, err := profileExists(ctx, teamA+"-p2")
		return err == nil && !p, fmt.Sprintf("Profile %s-p2 still exists (%v)", teamA, err)
	})
	time.Sleep(2 * time.Second)
	for _, ns := range append(append([]string{plainA}, usersA...), usersB...) {
		if st, err := namespaceState(t.Context(), ns); err != nil || st != "active" {
			t.Fatalf("namespace %s is %s (%v) while its team's Profiles still exist", ns, st, err)
		}
	}

	// Released Profile: team A's namespaces go well before the bound.
	removeFinalizers(t, teamA+"-p1")
	for _, ns := range append([]string{plainA}, usersA...) {
		testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
			st, err := namespaceState(ctx, ns)
			return err == nil && st != "active", fmt.Sprintf("namespace %s is %s (%v)", ns, st, err)
		})
	}
	// Stuck Profile: team B's namespaces go once the bound has passed.
	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		st, err := namespaceState(ctx, usersB[0])
		return err == nil && st != "active", fmt.Sprintf("namespace %s is %s (%v)", usersB[0], st, err)
	})
	if p, err := profileExists(t.Context(), other+"-p1"); err != nil || !p {
		t.Errorf("another team's Profile was deleted (%v)", err)
	}
	if st, err := namespaceState(t.Context(), otherUser); err != nil || st != "active" {
		t.Errorf("another team's namespace %s is %s (%v)", otherUser, st, err)
	}
}

// A team namespace already Terminating when the service starts is torn down.
func TestTeamTerminatingAtStartIsTornDown(t *testing.T) {
	repo := helmtest.NewRepo(t, chart(t, "alpha", "0.1.0"))
	teamNS := team(t, repo.URL)
	userNS := user(t, teamNS, "u1", "u1@x", nil)
	createProfile(t, teamNS+"-p1", teamNS)
	// A finalizer on an object inside keeps the team namespace Terminating.
	cms := env.Clientset.CoreV1().ConfigMaps(teamNS)
	if _, err := cms.Create(t.Context(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hold", Finalizers: []string{"test.orbit/hold"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cms.Patch(context.Background(), "hold", "application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	deleteNamespace(t, teamNS)
	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		st, err := namespaceState(ctx, teamNS)
		return err == nil && st == "terminating", fmt.Sprintf("team namespace is %s (%v)", st, err)
	})

	startService(t, defaultTestOptions(t))
	testenv.Eventually(t, 30*time.Second, func(ctx context.Context) (bool, string) {
		p, err := profileExists(ctx, teamNS+"-p1")
		if err != nil || p {
			return false, fmt.Sprintf("Profile still exists (%v)", err)
		}
		st, err := namespaceState(ctx, userNS)
		return err == nil && st != "active", fmt.Sprintf("user namespace is %s (%v)", st, err)
	})
}

// With the service stopped, two user namespaces appear and one with releases goes; on start
// exactly the right releases exist.
func TestRestartConverges(t *testing.T) {
	repo := helmtest.NewRepo(t, chart(t, "alpha", "0.1.0"), chart(t, "beta", "0.1.0"))
	teamNS := team(t, repo.URL)
	opts := defaultTestOptions(t)
	first := startService(t, opts)
	gone := user(t, teamNS, "gone", "gone@x", nil)
	waitReleases(t, teamNS, 60*time.Second, gone+"-alpha", gone+"-beta")
	first.stop()

	u1 := user(t, teamNS, "u1", "u1@x", nil)
	u2 := user(t, teamNS, "u2", "u2@x", nil)
	deleteNamespace(t, gone)
	testenv.Eventually(t, 60*time.Second, func(ctx context.Context) (bool, string) {
		st, err := namespaceState(ctx, gone)
		return err == nil && st == "gone", fmt.Sprintf("namespace %s is %s (%v)", gone, st, err)
	})
	if recs, err := records(t.Context(), teamNS); err != nil || len(recs) != 2 {
		t.Fatalf("while stopped the team holds %v (%v), want the 2 releases of the deleted namespace", sortedKeys(recs), err)
	}

	opts.Identity = "second-" + opts.Identity
	startService(t, opts)
	waitReleases(t, teamNS, 60*time.Second, u1+"-alpha", u1+"-beta", u2+"-alpha", u2+"-beta")
}

// A resync installs charts added to the repository since, and never upgrades an installed
// release to a newer chart version.
func TestResyncInstallsNewChartsButNeverUpgrades(t *testing.T) {
	repo := helmtest.NewRepo(t, chart(t, "alpha", "0.1.0"))
	teamNS := team(t, repo.URL)
	opts := defaultTestOptions(t)
	opts.Resync = time.Second
	startService(t, opts)
	u := user(t, teamNS, "u1", "u1@x", nil)
	waitReleases(t, teamNS, 60*time.Second, u+"-alpha")

	repo.Set(chart(t, "alpha", "0.1.0"), chart(t, "alpha", "0.9.0"), chart(t, "gamma", "0.1.0"))
	waitReleases(t, teamNS, 30*time.Second, u+"-alpha", u+"-gamma")
	time.Sleep(2 * time.Second) // another resync or two
	rel, err := driver.NewSecrets(env.Clientset.CoreV1().Secrets(teamNS)).Get("sh.helm.release.v1." + u + "-alpha.v1")
	if err != nil {
		t.Fatal(err)
	}
	if rel.Chart.Metadata.Version != "0.1.0" || rel.Version != 1 {
		t.Errorf("alpha release is chart %s revision %d; want 0.1.0 revision 1 (never upgraded)", rel.Chart.Metadata.Version, rel.Version)
	}
	if cm, err := configMap(t.Context(), u, "alpha-settings"); err != nil || cm.Data["chartVersion"] != "0.1.0" {
		t.Errorf("alpha ConfigMap: %v, version %q", err, cm.Data["chartVersion"])
	}
}

// Each failure is logged with its reason and retried, and other namespaces are still served;
// fixing the cause converges without a restart.
func TestFailuresAreLoggedRetriedAndIsolated(t *testing.T) {
	good := helmtest.NewRepo(t, chart(t, "alpha", "0.1.0"))
	withBroken := helmtest.NewRepo(t, chart(t, "alpha", "0.1.0"), chart(t, "broken", "0.1.0"))
	opts := defaultTestOptions(t)
	opts.Resync = time.Second
	svc := startService(t, opts)

	unreachable := team(t, "http://127.0.0.1:1/charts")
	malformed := team(t, good.URL)
	setTeamContext(t, malformed, `{"UserHelmRepository": `)
	brokenTeam := team(t, withBroken.URL)
	goodTeam := team(t, good.URL)

	uUnreachable := user(t, unreachable, "u1", "u1@x", nil)
	uMalformed := user(t, malformed, "u1", "u1@x", nil)
	uBroken := user(t, brokenTeam, "u1", "u1@x", nil)
	uIncomplete := user(t, goodTeam, "nobody", "", nil)
	uGood := user(t, goodTeam, "u1", "u1@x", nil)

	waitReleases(t, goodTeam, 60*time.Second, uGood+"-alpha")
	waitReleases(t, brokenTeam, 60*time.Second, uBroken+"-alpha")
	for _, c := range []struct{ key, reason string }{
		{"user/" + uUnreachable, "read index of http://127.0.0.1:1/charts"},
		{"user/" + uMalformed, "is not a JSON object"},
		{"user/" + uBroken, "broken chart: value nope is required"},
	} {
		testenv.Eventually(t, 30*time.Second, func(context.Context) (bool, string) {
			n := len(svc.logs.lines(`"key":"`+c.key+`"`, "retrying with backoff", c.reason))
			return n >= 2, fmt.Sprintf("%s: %d retry lines with %q, want ≥ 2", c.key, n, c.reason)
		})
	}
	if lines := svc.logs.lines(`"release":"`+brokenTeam+"/"+uBroken+`-broken"`, "release not installed"); len(lines) == 0 {
		t.Error("the template error was not logged for its release")
	}
	if n := svc.counter(t, "orbit_userspace_chart_manager_failures_total", "operation", "install"); n < 2 {
		t.Errorf("install failures = %v, want ≥ 2", n)
	}
	if n := svc.counter(t, "orbit_userspace_chart_manager_failures_total", "operation", "teamContext"); n < 2 {
		t.Errorf("team context failures = %v, want ≥ 2", n)
	}
	if n := svc.counter(t, "orbit_userspace_chart_manager_failures_total", "operation", "repository"); n < 2 {
		t.Errorf("repository failures = %v, want ≥ 2", n)
	}
	// The incomplete namespace: one error line however many resyncs pass, and no release.
	time.Sleep(2500 * time.Millisecond)
	if lines := svc.logs.lines(`"namespace":"`+uIncomplete+`"`, "lacks required labels"); len(lines) != 1 || lines[0]["level"] != "error" {
		t.Errorf("incomplete namespace logged %d times (%v), want one error line", len(lines), lines)
	}
	if recs, _ := records(t.Context(), goodTeam); len(recs) != 1 {
		t.Errorf("team %s holds %v; the incomplete namespace must get nothing", goodTeam, sortedKeys(recs))
	}

	// Fixes converge: a reachable repository, a well-formed context, the missing annotation.
	setTeamContext(t, unreachable, fmt.Sprintf(`{"UserHelmRepository":%q}`, good.URL))
	setTeamContext(t, malformed, fmt.Sprintf(`{"UserHelmRepository":%q}`, good.URL))
	patch := []byte(`{"metadata":{"annotations":{"owner":"nobody@x"}}}`)
	if _, err := env.Clientset.CoreV1().Namespaces().Patch(t.Context(), uIncomplete, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReleases(t, unreachable, 30*time.Second, uUnreachable+"-alpha")
	waitReleases(t, malformed, 30*time.Second, uMalformed+"-alpha")
	waitReleases(t, goodTeam, 30*time.Second, uGood+"-alpha", uIncomplete+"-alpha")
}

// A release left failed is uninstalled and installed again, with backoff, until it succeeds.
func TestFailedReleaseIsReinstalled(t *testing.T) {
	repo := helmtest.NewRepo(t, chart(t, "extra", "0.1.0"))
	teamNS := team(t, repo.URL)
	svc := startService(t, defaultTestOptions(t))
	u := user(t, teamNS, "u1", "u1@x", nil)

	// The chart's ConfigMap goes to <user>-extra, which does not exist yet: Helm records a
	// failed release.
	testenv.Eventually(t, 30*time.Second, func(context.Context) (bool, string) {
		n := len(svc.logs.lines(`"release":"`+teamNS+"/"+u+`-extra"`, "reinstalling"))
		return n >= 2, fmt.Sprintf("%d reinstall attempts, want ≥ 2", n)
	})
	env.CreateNamespace(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: u + "-extra"}})
	waitReleases(t, teamNS, 90*time.Second, u+"-extra")
	if _, err := configMap(t.Context(), u+"-extra", "extra"); err != nil {
		t.Errorf("the reinstalled release's ConfigMap: %v", err)
	}
}

// Readiness stays false until the caches have synced: against an API server that does not
// answer, it never turns true.
func TestNotReadyUntilCachesSync(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second}
	svc := startServiceWithConfig(t, cfg, defaultTestOptions(t), false)
	time.Sleep(1500 * time.Millisecond)
	if err := svc.checks.Ready(t.Context()); err == nil || !strings.Contains(err.Error(), "not synced") {
		t.Errorf("ready = %v, want not synced", err)
	}
	svc.stop()
}

// The flags and environment of SPEC §6 reach the options.
func TestOptionsValidate(t *testing.T) {
	o := chartmanager.DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	o.Resync = 0
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--resync-period") {
		t.Errorf("err = %v, want one naming --resync-period", err)
	}
}

// A user namespace whose <namespace>-<chart> exceeds Helm's 53 characters gets the shortened
// name, and loses it again on deletion (found by label, not by name).
func TestLongNamesAreShortened(t *testing.T) {
	repo := helmtest.NewRepo(t, chart(t, "alpha", "0.1.0"))
	teamNS := team(t, repo.URL)
	startService(t, defaultTestOptions(t))
	long := user(t, teamNS, strings.Repeat("very-long-user-", 3)+"name", "long@x", nil)
	want := desired.ReleaseName(long, "alpha")
	if len(long+"-alpha") <= 53 || len(want) > 53 {
		t.Fatalf("fixture: %q (%d) should need shortening to %q", long+"-alpha", len(long+"-alpha"), want)
	}
	waitReleases(t, teamNS, 60*time.Second, want)
	if cm, err := configMap(t.Context(), long, "alpha-settings"); err != nil || cm.Data["release"] != want {
		t.Errorf("ConfigMap: %v, release %q", err, cm.Data["release"])
	}
	deleteNamespace(t, long)
	waitReleases(t, teamNS, 60*time.Second)
}

// Two replicas with leader election: both become ready (warm standby), only the leader works,
// and when it stops the other takes over.
func TestLeaderElectionHandsOver(t *testing.T) {
	repo := helmtest.NewRepo(t, chart(t, "alpha", "0.1.0"))
	teamNS := team(t, repo.URL)
	opts := defaultTestOptions(t)
	opts.Leader = controller.LeaderOptions{Enabled: true, LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}
	optsA, optsB := opts, opts
	optsA.Identity, optsB.Identity = "replica-a", "replica-b"
	a := startService(t, optsA)
	testenv.Eventually(t, 10*time.Second, func(context.Context) (bool, string) {
		return len(a.logs.lines("became leader")) == 1, "replica a did not lead"
	})
	b := startService(t, optsB) // ready although it does not lead
	u1 := user(t, teamNS, "u1", "u1@x", nil)
	waitReleases(t, teamNS, 60*time.Second, u1+"-alpha")
	if n := b.counter(t, "orbit_userspace_chart_manager_installs_total"); n != 0 {
		t.Errorf("the standby installed %v releases", n)
	}

	a.stop()
	u2 := user(t, teamNS, "u2", "u2@x", nil)
	waitReleases(t, teamNS, 60*time.Second, u1+"-alpha", u2+"-alpha")
	if n := b.counter(t, "orbit_userspace_chart_manager_installs_total"); n != 1 {
		t.Errorf("the new leader installed %v releases, want 1", n)
	}
	// The leader records its progress in the shared state ConfigMap.
	testenv.Eventually(t, 10*time.Second, func(ctx context.Context) (bool, string) {
		cm, err := env.Clientset.CoreV1().ConfigMaps(opts.Namespace).Get(ctx, controller.StateConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		st, err := controller.ReadState(cm, controller.StateKeyUserspaceChartManager)
		return err == nil && st.LastResourceVersion != "", fmt.Sprintf("state %+v (%v)", st, err)
	})
}
