package desired

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func userLabels(extra map[string]string) map[string]string {
	l := map[string]string{LabelSpace: SpaceUser, LabelEnv: "dev", LabelTeam: "lake", LabelUser: "alice"}
	for k, v := range extra {
		if v == "" {
			delete(l, k)
			continue
		}
		l[k] = v
	}
	return l
}

func TestParseUser(t *testing.T) {
	owner := map[string]string{AnnotationOwner: "alice@example.com"}
	cases := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		want        User
		wantErr     error
		missing     []string
	}{
		{
			name: "complete", labels: userLabels(nil), annotations: owner,
			want: User{Namespace: "lake-alice", Team: "lake", Env: "dev", User: "alice", Email: "alice@example.com"},
		},
		{
			name: "efs access point passed through", labels: userLabels(map[string]string{LabelEFS: "fsap-123"}), annotations: owner,
			want: User{Namespace: "lake-alice", Team: "lake", Env: "dev", User: "alice", Email: "alice@example.com", EFSAccessPointID: "fsap-123"},
		},
		{name: "team namespace", labels: map[string]string{LabelSpace: SpaceTeam, LabelTeam: "lake"}, wantErr: ErrNotUserSpace},
		{name: "no orbit/space", labels: map[string]string{LabelTeam: "lake"}, wantErr: ErrNotUserSpace},
		{name: "missing owner", labels: userLabels(nil), missing: []string{"annotation owner"}},
		{name: "missing team and user", labels: userLabels(map[string]string{LabelTeam: "", LabelUser: ""}), annotations: owner,
			missing: []string{"label orbit/team", "label orbit/user"}},
		{name: "blank env", labels: userLabels(map[string]string{LabelEnv: " "}), annotations: owner, missing: []string{"label orbit/env"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUser("lake-alice", tc.labels, tc.annotations)
			switch {
			case tc.missing != nil:
				var inc *IncompleteError
				if !errors.As(err, &inc) {
					t.Fatalf("err = %v, want IncompleteError", err)
				}
				if !reflect.DeepEqual(inc.Missing, tc.missing) {
					t.Errorf("missing = %v, want %v", inc.Missing, tc.missing)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
			}
		})
	}
}

func TestValuesAndLabels(t *testing.T) {
	u := User{Namespace: "lake-alice", Team: "lake", User: "alice", Email: "a@x"}
	want := map[string]any{"user": "alice", "user_email": "a@x", "namespace": "lake-alice", "user_efsapid": ""}
	if got := Values(u); !reflect.DeepEqual(got, want) {
		t.Errorf("Values = %v, want %v", got, want)
	}
	wantLabels := map[string]string{"orbit/user-namespace": "lake-alice", "app.kubernetes.io/managed-by": "userspace-chart-manager"}
	if got := ReleaseLabels("lake-alice"); !reflect.DeepEqual(got, wantLabels) {
		t.Errorf("ReleaseLabels = %v, want %v", got, wantLabels)
	}
}

func TestReleaseName(t *testing.T) {
	long := strings.Repeat("n", 60)
	cases := []struct {
		ns, chart string
		want      string // exact, or "" to check only the rules
		prefix    string
	}{
		{ns: "lake-alice", chart: "jupyter", want: "lake-alice-jupyter"},
		{ns: strings.Repeat("a", 40), chart: strings.Repeat("b", 12), want: strings.Repeat("a", 40) + "-" + strings.Repeat("b", 12)}, // exactly 53
		{ns: strings.Repeat("a", 41), chart: strings.Repeat("b", 12), prefix: strings.Repeat("a", 31) + "-" + strings.Repeat("b", 12) + "-"},
		{ns: "team-" + strings.Repeat("u", 50), chart: "jupyter-user", prefix: "team-" + strings.Repeat("u", 26) + "-jupyter-user-"},
		{ns: "lake-alice", chart: long, prefix: "lake-alice-nnnn"},
		{ns: "lake-alice", chart: "My_Chart", prefix: "lake-alice-my-chart-"},
		{ns: "lake-alice", chart: "chart.v2", want: "lake-alice-chart.v2"},
		{ns: "lake-alice", chart: "chart-", prefix: "lake-alice-chart-"},
	}
	for _, tc := range cases {
		got := ReleaseName(tc.ns, tc.chart)
		if len(got) > MaxReleaseNameLength || !validReleaseName(got) {
			t.Errorf("ReleaseName(%q, %q) = %q: invalid or longer than %d", tc.ns, tc.chart, got, MaxReleaseNameLength)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("ReleaseName(%q, %q) = %q, want %q", tc.ns, tc.chart, got, tc.want)
		}
		if tc.prefix != "" && !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("ReleaseName(%q, %q) = %q, want prefix %q", tc.ns, tc.chart, got, tc.prefix)
		}
		if again := ReleaseName(tc.ns, tc.chart); again != got {
			t.Errorf("ReleaseName is not deterministic: %q then %q", got, again)
		}
	}
	// Two long pairs with the same readable prefix still get different names.
	a := ReleaseName("team-"+strings.Repeat("u", 50)+"x", "jupyter")
	b := ReleaseName("team-"+strings.Repeat("u", 50)+"y", "jupyter")
	if a == b {
		t.Errorf("different namespaces share release name %q", a)
	}
}

func TestParseTeamContext(t *testing.T) {
	cases := []struct {
		name    string
		data    map[string]string
		want    TeamContext
		wantErr string
	}{
		{name: "https", data: map[string]string{"team": `{"UserHelmRepository":"https://charts.example.com/team","EksPodRoleArn":"arn"}`},
			want: TeamContext{UserHelmRepository: "https://charts.example.com/team"}},
		{name: "s3 with credentials secret ignored for s3 but kept", data: map[string]string{"team": `{"UserHelmRepository":"s3://bucket/lake/user","UserHelmRepositoryCredentialsSecret":"creds"}`},
			want: TeamContext{UserHelmRepository: "s3://bucket/lake/user", UserHelmRepositoryCredentialsSecret: "creds"}},
		{name: "oci", data: map[string]string{"team": `{"UserHelmRepository":" oci://registry:5000/charts "}`},
			want: TeamContext{UserHelmRepository: "oci://registry:5000/charts"}},
		{name: "no key", data: map[string]string{"other": "{}"}, wantErr: `no key "team"`},
		{name: "not json", data: map[string]string{"team": "{not json"}, wantErr: "not a JSON object"},
		{name: "no repository", data: map[string]string{"team": `{"Other":1}`}, wantErr: "no UserHelmRepository"},
		{name: "bad scheme", data: map[string]string{"team": `{"UserHelmRepository":"ftp://x/y"}`}, wantErr: "scheme must be"},
		{name: "no bucket", data: map[string]string{"team": `{"UserHelmRepository":"s3:///prefix"}`}, wantErr: "no host or bucket"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTeamContext(tc.data)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	u := User{Namespace: "lake-alice", Team: "lake", User: "alice", Email: "a@x"}
	rel := func(ns, chart, status string) Release {
		return Release{Namespace: ns, Name: ReleaseName("lake-alice", chart), UserNamespace: "lake-alice", Status: status}
	}
	cases := []struct {
		name     string
		charts   []string
		existing []Release
		want     []Step
	}{
		{name: "nothing installed", charts: []string{"jupyter", "alpha"},
			want: []Step{
				{Op: OpInstall, Namespace: "lake", Release: "lake-alice-alpha", Chart: "alpha"},
				{Op: OpInstall, Namespace: "lake", Release: "lake-alice-jupyter", Chart: "jupyter"},
			}},
		{name: "all deployed", charts: []string{"alpha"}, existing: []Release{rel("lake", "alpha", StatusDeployed)}},
		{name: "superseded counts as installed", charts: []string{"alpha"}, existing: []Release{rel("lake", "alpha", StatusSuperseded)}},
		{name: "new chart in repository", charts: []string{"alpha", "gamma"}, existing: []Release{rel("lake", "alpha", StatusDeployed)},
			want: []Step{{Op: OpInstall, Namespace: "lake", Release: "lake-alice-gamma", Chart: "gamma"}}},
		{name: "failed and pending reinstalled", charts: []string{"alpha", "beta", "gamma"},
			existing: []Release{rel("lake", "alpha", StatusFailed), rel("lake", "beta", StatusPendingInstall), rel("lake", "gamma", StatusDeployed)},
			want: []Step{
				{Op: OpReinstall, Namespace: "lake", Release: "lake-alice-alpha", Chart: "alpha"},
				{Op: OpReinstall, Namespace: "lake", Release: "lake-alice-beta", Chart: "beta"},
			}},
		{name: "chart removed from repository keeps its release", charts: []string{"alpha"},
			existing: []Release{rel("lake", "alpha", StatusDeployed), rel("lake", "old", StatusDeployed)}},
		{name: "release in a former team's namespace uninstalled first", charts: []string{"alpha"},
			existing: []Release{rel("river", "alpha", StatusDeployed)},
			want: []Step{
				{Op: OpUninstall, Namespace: "river", Release: "lake-alice-alpha"},
				{Op: OpInstall, Namespace: "lake", Release: "lake-alice-alpha", Chart: "alpha"},
			}},
		{name: "another user's record is ignored", charts: []string{"alpha"},
			existing: []Release{{Namespace: "lake", Name: "lake-alice-alpha", UserNamespace: "lake-bob", Status: StatusDeployed}},
			want:     []Step{{Op: OpInstall, Namespace: "lake", Release: "lake-alice-alpha", Chart: "alpha"}}},
		{name: "duplicate and empty chart names", charts: []string{"alpha", "", "alpha"},
			want: []Step{{Op: OpInstall, Namespace: "lake", Release: "lake-alice-alpha", Chart: "alpha"}}},
		{name: "empty repository", charts: nil, existing: []Release{rel("lake", "alpha", StatusDeployed)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Plan(u, tc.charts, tc.existing)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Plan =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestTeardown(t *testing.T) {
	existing := []Release{
		{Namespace: "lake", Name: "lake-alice-b", Status: StatusDeployed},
		{Namespace: "lake", Name: "lake-alice-a", Status: StatusFailed},
		{Namespace: "lake", Name: "lake-alice-a", Status: StatusFailed},
		{Namespace: "river", Name: "lake-alice-a", Status: StatusDeployed},
	}
	want := []Step{
		{Op: OpUninstall, Namespace: "lake", Release: "lake-alice-a"},
		{Op: OpUninstall, Namespace: "lake", Release: "lake-alice-b"},
		{Op: OpUninstall, Namespace: "river", Release: "lake-alice-a"},
	}
	if got := Teardown(existing); !reflect.DeepEqual(got, want) {
		t.Errorf("Teardown = %+v, want %+v", got, want)
	}
	if got := Teardown(nil); len(got) != 0 {
		t.Errorf("Teardown(nil) = %+v", got)
	}
}

func TestNeedsReinstall(t *testing.T) {
	for status, want := range map[string]bool{
		StatusDeployed: false, StatusSuperseded: false, StatusFailed: true, StatusPendingInstall: true,
		StatusPendingUpgrade: true, StatusPendingRollback: true, StatusUninstalling: true, StatusUninstalled: true, "": false,
	} {
		if got := NeedsReinstall(status); got != want {
			t.Errorf("NeedsReinstall(%q) = %v, want %v", status, got, want)
		}
	}
}

func TestKindAndTeam(t *testing.T) {
	if KindOf(map[string]string{LabelSpace: "user"}) != KindUser || KindOf(map[string]string{LabelSpace: "team"}) != KindTeam ||
		KindOf(map[string]string{LabelSpace: "env"}) != KindOther || KindOf(nil) != KindOther {
		t.Error("KindOf misclassifies")
	}
	if TeamName("lake", nil) != "lake" || TeamName("ns", map[string]string{LabelTeam: "lake"}) != "lake" {
		t.Error("TeamName: want the label, else the namespace name")
	}
}
