package podsettings

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

const uid = types.UID("0f9a7d3e-1111-2222-3333-444455556666")

func podSetting(mut ...func(*orbitv1.PodSetting)) *orbitv1.PodSetting {
	ps := &orbitv1.PodSetting{
		ObjectMeta: metav1.ObjectMeta{
			Name: "gpu", Namespace: "lake", UID: uid, Generation: 3,
			Labels: map[string]string{LabelSpace: SpaceTeam},
		},
		Spec: orbitv1.PodSettingSpec{Desc: "GPU nodes"},
	}
	for _, m := range mut {
		m(ps)
	}
	return ps
}

func TestHandled(t *testing.T) {
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"team space", map[string]string{LabelSpace: "team"}, true},
		{"team space with other labels", map[string]string{LabelSpace: "team", "x": "y"}, true},
		{"no labels", nil, false},
		{"user space", map[string]string{LabelSpace: "user"}, false},
		{"env space", map[string]string{LabelSpace: "env"}, false},
		{"team label only", map[string]string{LabelTeam: "lake"}, false},
		{"disabled with a value", map[string]string{LabelSpace: "team", LabelDisableWatcher: "true"}, false},
		{"disabled with an empty value", map[string]string{LabelSpace: "team", LabelDisableWatcher: ""}, false},
		{"disabled with false still disables", map[string]string{LabelSpace: "team", LabelDisableWatcher: "false"}, false},
		{"space value is case sensitive", map[string]string{LabelSpace: "Team"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := podSetting(func(ps *orbitv1.PodSetting) { ps.Labels = tc.labels })
			if got := Handled(ps); got != tc.want {
				t.Errorf("Handled = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDesiredPodDefault(t *testing.T) {
	for _, tc := range []struct {
		name string
		ps   *orbitv1.PodSetting
		want string // JSON of the whole object
	}{
		{
			name: "desc and owner",
			ps:   podSetting(),
			want: `{"apiVersion":"kubeflow.org/v1alpha1","kind":"PodDefault","metadata":{"labels":{"orbit/space":"team","orbit/team":"lake"},"name":"gpu","namespace":"lake","ownerReferences":[{"apiVersion":"orbit.aws/v1","blockOwnerDeletion":true,"controller":true,"kind":"PodSetting","name":"gpu","uid":"0f9a7d3e-1111-2222-3333-444455556666"}]},"spec":{"desc":"GPU nodes","selector":{"matchLabels":{"orbit/gpu":""}}}}`,
		},
		{
			name: "empty desc is written as empty",
			ps:   podSetting(func(ps *orbitv1.PodSetting) { ps.Spec.Desc = ""; ps.Name = "a-b.c" }),
			want: `{"apiVersion":"kubeflow.org/v1alpha1","kind":"PodDefault","metadata":{"labels":{"orbit/space":"team","orbit/team":"lake"},"name":"a-b.c","namespace":"lake","ownerReferences":[{"apiVersion":"orbit.aws/v1","blockOwnerDeletion":true,"controller":true,"kind":"PodSetting","name":"a-b.c","uid":"0f9a7d3e-1111-2222-3333-444455556666"}]},"spec":{"desc":"","selector":{"matchLabels":{"orbit/a-b.c":""}}}}`,
		},
		{
			name: "team label is the namespace, not the PodSetting's labels",
			ps: podSetting(func(ps *orbitv1.PodSetting) {
				ps.Namespace = "ocean"
				ps.Labels[LabelTeam] = "other"
				ps.Labels["extra"] = "not copied"
			}),
			want: `{"apiVersion":"kubeflow.org/v1alpha1","kind":"PodDefault","metadata":{"labels":{"orbit/space":"team","orbit/team":"ocean"},"name":"gpu","namespace":"ocean","ownerReferences":[{"apiVersion":"orbit.aws/v1","blockOwnerDeletion":true,"controller":true,"kind":"PodSetting","name":"gpu","uid":"0f9a7d3e-1111-2222-3333-444455556666"}]},"spec":{"desc":"GPU nodes","selector":{"matchLabels":{"orbit/gpu":""}}}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DesiredPodDefault(tc.ps).MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(string(got)) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func decode(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(s)); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return u
}

// ours is the PodDefault as the API server returns it after DesiredPodDefault(podSetting()).
const ours = `{"apiVersion":"kubeflow.org/v1alpha1","kind":"PodDefault","metadata":{"name":"gpu","namespace":"lake","resourceVersion":"7","labels":{"orbit/space":"team","orbit/team":"lake"},"ownerReferences":[{"apiVersion":"orbit.aws/v1","kind":"PodSetting","name":"gpu","uid":"0f9a7d3e-1111-2222-3333-444455556666","controller":true,"blockOwnerDeletion":true}]},"spec":{"desc":"GPU nodes","selector":{"matchLabels":{"orbit/gpu":""}}}}`

func TestPlan(t *testing.T) {
	deleting := metav1.NewTime(time.Unix(1, 0))
	for _, tc := range []struct {
		name     string
		ps       *orbitv1.PodSetting
		existing string // JSON, "" for none
		want     ActionKind
		// wantObject, when set, is the JSON the action's object must equal.
		wantObject string
	}{
		{name: "handled and missing: create", ps: podSetting(), want: Create,
			wantObject: `{"apiVersion":"kubeflow.org/v1alpha1","kind":"PodDefault","metadata":{"labels":{"orbit/space":"team","orbit/team":"lake"},"name":"gpu","namespace":"lake","ownerReferences":[{"apiVersion":"orbit.aws/v1","blockOwnerDeletion":true,"controller":true,"kind":"PodSetting","name":"gpu","uid":"0f9a7d3e-1111-2222-3333-444455556666"}]},"spec":{"desc":"GPU nodes","selector":{"matchLabels":{"orbit/gpu":""}}}}`},
		{name: "handled and up to date: nothing", ps: podSetting(), existing: ours, want: None},
		{name: "desc changed: update keeps everything else", ps: podSetting(func(ps *orbitv1.PodSetting) { ps.Spec.Desc = "Bigger GPUs" }),
			existing: ours, want: Update,
			wantObject: strings.Replace(ours, `"desc":"GPU nodes"`, `"desc":"Bigger GPUs"`, 1)},
		{name: "desc cleared: update to empty", ps: podSetting(func(ps *orbitv1.PodSetting) { ps.Spec.Desc = "" }),
			existing: ours, want: Update,
			wantObject: strings.Replace(ours, `"desc":"GPU nodes"`, `"desc":""`, 1)},
		{name: "selector tampered with: restored", ps: podSetting(),
			existing: strings.Replace(ours, `{"matchLabels":{"orbit/gpu":""}}`, `{"matchLabels":{"orbit/gpu":"x","a":"b"}}`, 1), want: Update,
			wantObject: ours},
		{name: "spec missing: restored", ps: podSetting(),
			existing: strings.Replace(ours, `,"spec":{"desc":"GPU nodes","selector":{"matchLabels":{"orbit/gpu":""}}}`, ``, 1), want: Update,
			wantObject: ours},
		{name: "extra spec fields and labels are kept", ps: podSetting(),
			existing: strings.Replace(strings.Replace(ours, `"desc":"GPU nodes"`, `"desc":"GPU nodes","env":[{"name":"A","value":"1"}]`, 1), `"orbit/team":"lake"`, `"orbit/team":"lake","keep":"me"`, 1),
			want:     None},
		{name: "our labels removed: restored", ps: podSetting(),
			existing: strings.Replace(ours, `"labels":{"orbit/space":"team","orbit/team":"lake"}`, `"labels":{"keep":"me"}`, 1), want: Update,
			wantObject: strings.Replace(ours, `"labels":{"orbit/space":"team","orbit/team":"lake"}`, `"labels":{"keep":"me","orbit/space":"team","orbit/team":"lake"}`, 1)},
		{name: "owner reference lost its controller flag: restored", ps: podSetting(),
			existing: strings.Replace(ours, `"controller":true,`, ``, 1), want: Update, wantObject: ours},
		{name: "other owners are kept beside ours", ps: podSetting(func(ps *orbitv1.PodSetting) { ps.Spec.Desc = "new" }),
			existing: strings.Replace(ours, `"ownerReferences":[`, `"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"x","uid":"other"},`, 1),
			want:     Update,
			wantObject: strings.Replace(strings.Replace(ours, `"ownerReferences":[`, `"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"x","uid":"other"},`, 1),
				`"desc":"GPU nodes"`, `"desc":"new"`, 1)},
		{name: "same name, not owned: conflict", ps: podSetting(),
			existing: strings.Replace(ours, string(uid), "another-uid", 1), want: Conflict},
		{name: "same name, no owner at all: conflict", ps: podSetting(),
			existing: `{"apiVersion":"kubeflow.org/v1alpha1","kind":"PodDefault","metadata":{"name":"gpu","namespace":"lake"},"spec":{"desc":"hand made"}}`, want: Conflict},
		{name: "existing is being deleted: wait", ps: podSetting(),
			existing: strings.Replace(ours, `"resourceVersion":"7"`, `"resourceVersion":"7","deletionTimestamp":"2024-01-01T00:00:00Z"`, 1), want: None},
		{name: "disabled and ours: delete", ps: podSetting(func(ps *orbitv1.PodSetting) { ps.Labels[LabelDisableWatcher] = "" }),
			existing: ours, want: Delete, wantObject: ours},
		{name: "no longer team space and ours: delete", ps: podSetting(func(ps *orbitv1.PodSetting) { delete(ps.Labels, LabelSpace) }),
			existing: ours, want: Delete, wantObject: ours},
		{name: "disabled and not ours: leave it", ps: podSetting(func(ps *orbitv1.PodSetting) { ps.Labels[LabelDisableWatcher] = "" }),
			existing: strings.Replace(ours, string(uid), "another-uid", 1), want: None},
		{name: "disabled and none: nothing", ps: podSetting(func(ps *orbitv1.PodSetting) { ps.Labels[LabelDisableWatcher] = "" }), want: None},
		{name: "disabled and ours already being deleted: nothing", ps: podSetting(func(ps *orbitv1.PodSetting) { ps.Labels[LabelDisableWatcher] = "" }),
			existing: strings.Replace(ours, `"resourceVersion":"7"`, `"resourceVersion":"7","deletionTimestamp":"2024-01-01T00:00:00Z"`, 1), want: None},
		{name: "podsetting being deleted: garbage collection's job", ps: podSetting(func(ps *orbitv1.PodSetting) { ps.DeletionTimestamp = &deleting }), want: None},
		{name: "podsetting being deleted with its poddefault: nothing", ps: podSetting(func(ps *orbitv1.PodSetting) { ps.DeletionTimestamp = &deleting }),
			existing: ours, want: None},
		{name: "podsetting without uid never owns anything", ps: podSetting(func(ps *orbitv1.PodSetting) { ps.UID = "" }),
			existing: strings.Replace(ours, string(uid), "", 1), want: Conflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var existing *unstructured.Unstructured
			if tc.existing != "" {
				existing = decode(t, tc.existing)
			}
			var before []byte
			if existing != nil {
				before, _ = existing.MarshalJSON()
			}
			got := Plan(tc.ps, existing)
			if got.Kind != tc.want {
				t.Fatalf("Plan = %s (%s), want %s", got.Kind, got.Why, tc.want)
			}
			if existing != nil {
				after, _ := existing.MarshalJSON()
				if string(before) != string(after) {
					t.Errorf("Plan modified its input:\n%s\n%s", before, after)
				}
			}
			if tc.wantObject != "" {
				want := decode(t, tc.wantObject)
				if !equality.Semantic.DeepEqual(got.Object.Object, want.Object) {
					g, _ := got.Object.MarshalJSON()
					t.Errorf("object\n got  %s\n want %s", g, tc.wantObject)
				}
			}
			if (got.Kind == Create || got.Kind == Update || got.Kind == Delete || got.Kind == Conflict) && got.Object == nil {
				t.Errorf("%s without an object", got.Kind)
			}
		})
	}
}

func TestOwnedBy(t *testing.T) {
	pd := decode(t, ours)
	if !OwnedBy(pd, uid) {
		t.Error("our PodDefault not recognised")
	}
	if OwnedBy(pd, "other") {
		t.Error("recognised with another uid")
	}
	if OwnedBy(pd, "") {
		t.Error("empty uid must own nothing")
	}
	if OwnedBy(decode(t, `{"apiVersion":"kubeflow.org/v1alpha1","kind":"PodDefault","metadata":{"name":"x"}}`), uid) {
		t.Error("PodDefault without owners recognised")
	}
}

func TestValidCondition(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		problems []string
		status   metav1.ConditionStatus
		reason   string
		message  string
	}{
		{"none", nil, metav1.ConditionTrue, ReasonValid, MessageValid},
		{"empty slice", []string{}, metav1.ConditionTrue, ReasonValid, MessageValid},
		{"regex", []string{"containerSelector.regex: error parsing regexp: missing closing ): `(`"},
			metav1.ConditionFalse, ReasonInvalidContainerSelector, "containerSelector.regex: error parsing regexp: missing closing ): `(`"},
		{"operator", []string{`podSelector.matchExpressions[0].operator: unknown operator "Is"`},
			metav1.ConditionFalse, ReasonInvalidPodSelector, `podSelector.matchExpressions[0].operator: unknown operator "Is"`},
		{"two pod problems", []string{"podSelector.a", "podSelector.b"},
			metav1.ConditionFalse, ReasonInvalidPodSelector, "podSelector.a; podSelector.b"},
		{"both selectors", []string{"podSelector.a", "containerSelector.b"},
			metav1.ConditionFalse, ReasonInvalidSelectors, "podSelector.a; containerSelector.b"},
		{"unprefixed problem counts as both", []string{"something"},
			metav1.ConditionFalse, ReasonInvalidSelectors, "something"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ValidCondition(tc.problems, 9, now)
			if c.Type != orbitv1.ConditionValid || c.Status != tc.status || c.Reason != tc.reason || c.Message != tc.message ||
				c.ObservedGeneration != 9 || !c.LastTransitionTime.Time.Equal(now) {
				t.Errorf("got %+v", c)
			}
		})
	}
	long := []string{"containerSelector." + strings.Repeat("x", 40000)}
	if c := ValidCondition(long, 1, now); len(c.Message) != maxMessage || !strings.HasSuffix(c.Message, "...") {
		t.Errorf("long message is %d bytes, want %d ending in ...", len(c.Message), maxMessage)
	}
}

func TestDesiredStatus(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Hour)
	validAt := func(gen int64, at time.Time) orbitv1.PodSettingStatus {
		return orbitv1.PodSettingStatus{ObservedGeneration: gen, Conditions: []metav1.Condition{ValidCondition(nil, gen, at)}}
	}
	invalidAt := func(gen int64, at time.Time, problems ...string) orbitv1.PodSettingStatus {
		return orbitv1.PodSettingStatus{ObservedGeneration: gen, Conditions: []metav1.Condition{ValidCondition(problems, gen, at)}, SelectorErrors: problems}
	}
	other := metav1.Condition{Type: "Other", Status: metav1.ConditionTrue, Reason: "X", Message: "m", LastTransitionTime: metav1.NewTime(t0)}
	for _, tc := range []struct {
		name     string
		current  orbitv1.PodSettingStatus
		gen      int64
		problems []string
		want     orbitv1.PodSettingStatus
		changed  bool
	}{
		{name: "empty status, valid", gen: 3, want: validAt(3, t1), changed: true},
		{name: "empty status, invalid", gen: 3, problems: []string{"containerSelector.regex: bad"},
			want: invalidAt(3, t1, "containerSelector.regex: bad"), changed: true},
		{name: "already valid: no write", current: validAt(3, t0), gen: 3, want: validAt(3, t0), changed: false},
		{name: "already invalid with the same problems: no write", current: invalidAt(3, t0, "podSelector.x"), gen: 3,
			problems: []string{"podSelector.x"}, want: invalidAt(3, t0, "podSelector.x"), changed: false},
		{name: "new generation, still valid: generations move, transition time stays", current: validAt(3, t0), gen: 4,
			want: validAt(4, t0), changed: true},
		{name: "fixed: flips to true, errors cleared, transition time moves", current: invalidAt(3, t0, "podSelector.x"), gen: 4,
			want: validAt(4, t1), changed: true},
		{name: "broken: flips to false", current: validAt(3, t0), gen: 4, problems: []string{"containerSelector.y"},
			want: invalidAt(4, t1, "containerSelector.y"), changed: true},
		{name: "different problems, still false: transition time stays", current: invalidAt(4, t0, "podSelector.x"), gen: 5,
			problems: []string{"podSelector.x", "podSelector.z"}, want: invalidAt(5, t0, "podSelector.x", "podSelector.z"), changed: true},
		{name: "selectorErrors out of step with the condition are corrected", current: orbitv1.PodSettingStatus{
			ObservedGeneration: 3, Conditions: []metav1.Condition{ValidCondition(nil, 3, t0)}, SelectorErrors: []string{"stale"}},
			gen: 3, want: validAt(3, t0), changed: true},
		{name: "other conditions are kept", current: orbitv1.PodSettingStatus{Conditions: []metav1.Condition{other}}, gen: 1,
			want: orbitv1.PodSettingStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{other, ValidCondition(nil, 1, t1)}}, changed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := podSetting(func(ps *orbitv1.PodSetting) { ps.Generation = tc.gen; ps.Status = tc.current })
			before := ps.DeepCopy()
			got, changed := DesiredStatus(ps, tc.problems, t1)
			if changed != tc.changed {
				t.Errorf("changed = %v, want %v", changed, tc.changed)
			}
			if !equality.Semantic.DeepEqual(got, tc.want) {
				t.Errorf("status\n got  %+v\n want %+v", got, tc.want)
			}
			if !equality.Semantic.DeepEqual(ps, before) {
				t.Error("DesiredStatus modified its input")
			}
			// Applying the result again is a fixed point: that is what prevents write loops.
			ps.Status = got
			if _, again := DesiredStatus(ps, tc.problems, t1.Add(time.Hour)); again {
				t.Error("second DesiredStatus on its own output wants another write")
			}
		})
	}
}
