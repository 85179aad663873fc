package poddefaults

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func decode(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	if !strings.Contains(s, `"kind"`) { // the decoder needs a kind; the API server always sends one
		s = `{"apiVersion":"kubeflow.org/v1alpha1","kind":"PodDefault",` + strings.TrimPrefix(s, "{")
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(s)); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return u
}

// pd builds a PodDefault from a compact description: namespace/name, labels, annotations,
// spec JSON ("" for none), and whether it is being deleted.
type pdSpec struct {
	ns, name    string
	labels      map[string]string
	annotations map[string]string
	spec        string
	deleting    bool
}

func (p pdSpec) build(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{}}
	if p.spec != "" {
		u = decode(t, `{"spec":`+p.spec+`}`)
	}
	u.SetGroupVersionKind(GVK)
	u.SetNamespace(p.ns)
	u.SetName(p.name)
	u.SetResourceVersion("1")
	if p.labels != nil {
		u.SetLabels(p.labels)
	}
	if p.annotations != nil {
		u.SetAnnotations(p.annotations)
	}
	if p.deleting {
		ts := metav1.NewTime(time.Unix(10, 0))
		u.SetDeletionTimestamp(&ts)
	}
	return u
}

func teamPD(ns, name, team, spec string) pdSpec {
	return pdSpec{ns: ns, name: name, labels: map[string]string{LabelSpace: SpaceTeam, LabelTeam: team}, spec: spec}
}

func copyPD(ns, name, team, source, spec string) pdSpec {
	return pdSpec{ns: ns, name: name, labels: map[string]string{LabelSpace: SpaceUser, LabelTeam: team},
		annotations: map[string]string{AnnotationSource: source}, spec: spec}
}

func namespace(name string, labels map[string]string, terminating bool) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if terminating {
		ns.Status.Phase = corev1.NamespaceTerminating
	}
	return ns
}

func user(name, team string) *corev1.Namespace {
	return namespace(name, map[string]string{LabelSpace: SpaceUser, LabelTeam: team, "orbit/user": name}, false)
}

const (
	specA = `{"desc":"A","selector":{"matchLabels":{"orbit/a":""}}}`
	specB = `{"desc":"B","selector":{"matchLabels":{"orbit/b":""}},"env":[{"name":"X","value":"1"}],"replicas":3,"ratio":0.5}`
)

func TestClassification(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pd       pdSpec
		team     string
		isCopy   bool
		copyTeam string
	}{
		{"team poddefault", teamPD("lake", "a", "lake", specA), "lake", false, "lake"},
		{"team poddefault of another namespace's team", teamPD("x", "a", "lake", specA), "lake", false, "lake"},
		{"team space without team label", pdSpec{ns: "lake", name: "a", labels: map[string]string{LabelSpace: SpaceTeam}}, "", false, ""},
		{"team label without space", pdSpec{ns: "lake", name: "a", labels: map[string]string{LabelTeam: "lake"}}, "", false, "lake"},
		{"copy", copyPD("lake-ann", "a", "lake", "lake/a", specA), "", true, "lake"},
		{"copy without team label falls back to source namespace", pdSpec{ns: "lake-ann", name: "a",
			labels: map[string]string{LabelSpace: SpaceUser}, annotations: map[string]string{AnnotationSource: "lake/a"}}, "", true, "lake"},
		{"copy with malformed source", pdSpec{ns: "lake-ann", name: "a", annotations: map[string]string{AnnotationSource: "nonsense"}}, "", true, ""},
		{"user's own poddefault", pdSpec{ns: "lake-ann", name: "a", labels: map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake"}}, "", false, "lake"},
		{"team poddefault with a stray source annotation is a team poddefault", pdSpec{ns: "lake", name: "a",
			labels: map[string]string{LabelSpace: SpaceTeam, LabelTeam: "lake"}, annotations: map[string]string{AnnotationSource: "x/y"}}, "lake", false, "lake"},
		{"no labels", pdSpec{ns: "lake", name: "a"}, "", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pd := tc.pd.build(t)
			if got := TeamOf(pd); got != tc.team {
				t.Errorf("TeamOf = %q, want %q", got, tc.team)
			}
			if got := IsCopy(pd); got != tc.isCopy {
				t.Errorf("IsCopy = %v, want %v", got, tc.isCopy)
			}
			if got := CopyTeam(pd); got != tc.copyTeam {
				t.Errorf("CopyTeam = %q, want %q", got, tc.copyTeam)
			}
		})
	}
}

func TestUserTeamAndTerminating(t *testing.T) {
	deleting := metav1.NewTime(time.Unix(1, 0))
	for _, tc := range []struct {
		name        string
		ns          *corev1.Namespace
		team        string
		terminating bool
	}{
		{"user", user("lake-ann", "lake"), "lake", false},
		{"team namespace", namespace("lake", map[string]string{LabelSpace: SpaceTeam, LabelTeam: "lake"}, false), "", false},
		{"user without team", namespace("x", map[string]string{LabelSpace: SpaceUser}, false), "", false},
		{"user with empty team", namespace("x", map[string]string{LabelSpace: SpaceUser, LabelTeam: ""}, false), "", false},
		{"unlabelled", namespace("default", nil, false), "", false},
		{"kubeflow space", namespace("kubeflow", map[string]string{LabelSpace: "kubeflow", LabelTeam: "lake"}, false), "", false},
		{"terminating by phase", namespace("lake-ann", map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake"}, true), "lake", true},
		{"terminating by deletion timestamp", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "lake-ann", DeletionTimestamp: &deleting,
			Labels: map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake"}}}, "lake", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := UserTeam(tc.ns); got != tc.team {
				t.Errorf("UserTeam = %q, want %q", got, tc.team)
			}
			if got := Terminating(tc.ns); got != tc.terminating {
				t.Errorf("Terminating = %v, want %v", got, tc.terminating)
			}
		})
	}
}

// describe renders copies compactly: "ns/name<-source:desc".
func describe(copies []Copy) []string {
	var out []string
	for _, c := range copies {
		d, _ := c.Spec["desc"].(string)
		out = append(out, fmt.Sprintf("%s/%s<-%s:%s@%s", c.Namespace, c.Name, c.Source, d, c.Team))
	}
	return out
}

func TestDesired(t *testing.T) {
	for _, tc := range []struct {
		name string
		team string
		pds  []pdSpec
		nss  []*corev1.Namespace
		want []string
	}{
		{name: "nothing", team: "lake"},
		{name: "poddefaults but no users", team: "lake", pds: []pdSpec{teamPD("lake", "a", "lake", specA)}},
		{name: "users but no poddefaults", team: "lake", nss: []*corev1.Namespace{user("lake-ann", "lake")}},
		{name: "product of poddefaults and users, sorted", team: "lake",
			pds: []pdSpec{teamPD("lake", "b", "lake", specB), teamPD("lake", "a", "lake", specA)},
			nss: []*corev1.Namespace{user("lake-bob", "lake"), user("lake-ann", "lake"), user("lake-cid", "lake")},
			want: []string{
				"lake-ann/a<-lake/a:A@lake", "lake-ann/b<-lake/b:B@lake",
				"lake-bob/a<-lake/a:A@lake", "lake-bob/b<-lake/b:B@lake",
				"lake-cid/a<-lake/a:A@lake", "lake-cid/b<-lake/b:B@lake",
			}},
		{name: "other teams' poddefaults and users are ignored", team: "lake",
			pds:  []pdSpec{teamPD("lake", "a", "lake", specA), teamPD("ocean", "o", "ocean", specB)},
			nss:  []*corev1.Namespace{user("lake-ann", "lake"), user("ocean-oli", "ocean")},
			want: []string{"lake-ann/a<-lake/a:A@lake"}},
		{name: "copies, user-made and unlabelled poddefaults are not sources", team: "lake",
			pds: []pdSpec{
				teamPD("lake", "a", "lake", specA),
				copyPD("lake-ann", "a", "lake", "lake/a", specA),
				{ns: "lake-ann", name: "mine", labels: map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake"}, spec: specB},
				{ns: "lake", name: "plain", spec: specB},
				{ns: "lake", name: "spaceonly", labels: map[string]string{LabelSpace: SpaceTeam}, spec: specB},
			},
			nss:  []*corev1.Namespace{user("lake-ann", "lake")},
			want: []string{"lake-ann/a<-lake/a:A@lake"}},
		{name: "team namespace, terminating and unlabelled namespaces get nothing", team: "lake",
			pds: []pdSpec{teamPD("lake", "a", "lake", specA)},
			nss: []*corev1.Namespace{
				namespace("lake", map[string]string{LabelSpace: SpaceTeam, LabelTeam: "lake"}, false),
				namespace("lake-gone", map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake"}, true),
				namespace("lake-x", map[string]string{LabelTeam: "lake"}, false),
				user("lake-ann", "lake"),
			},
			want: []string{"lake-ann/a<-lake/a:A@lake"}},
		{name: "a poddefault being deleted is not copied", team: "lake",
			pds:  []pdSpec{{ns: "lake", name: "a", labels: map[string]string{LabelSpace: SpaceTeam, LabelTeam: "lake"}, spec: specA, deleting: true}, teamPD("lake", "b", "lake", specB)},
			nss:  []*corev1.Namespace{user("lake-ann", "lake")},
			want: []string{"lake-ann/b<-lake/b:B@lake"}},
		{name: "the team label decides, not the namespace", team: "lake",
			pds:  []pdSpec{teamPD("shared", "s", "lake", specA), teamPD("lake", "x", "ocean", specB)},
			nss:  []*corev1.Namespace{user("lake-ann", "lake")},
			want: []string{"lake-ann/s<-shared/s:A@lake"}},
		{name: "same name in two namespaces: the team's own namespace wins", team: "lake",
			pds:  []pdSpec{teamPD("aaa", "a", "lake", specB), teamPD("lake", "a", "lake", specA), teamPD("zzz", "a", "lake", specB)},
			nss:  []*corev1.Namespace{user("lake-ann", "lake")},
			want: []string{"lake-ann/a<-lake/a:A@lake"}},
		{name: "same name in two other namespaces: the first wins", team: "lake",
			pds:  []pdSpec{teamPD("zzz", "a", "lake", specB), teamPD("aaa", "a", "lake", specA)},
			nss:  []*corev1.Namespace{user("lake-ann", "lake")},
			want: []string{"lake-ann/a<-aaa/a:A@lake"}},
		{name: "a source is not copied into its own namespace", team: "lake",
			pds:  []pdSpec{teamPD("lake-ann", "a", "lake", specA)},
			nss:  []*corev1.Namespace{user("lake-ann", "lake"), user("lake-bob", "lake")},
			want: []string{"lake-bob/a<-lake-ann/a:A@lake"}},
		{name: "a source without spec gives copies without spec", team: "lake",
			pds:  []pdSpec{teamPD("lake", "bare", "lake", "")},
			nss:  []*corev1.Namespace{user("lake-ann", "lake")},
			want: []string{"lake-ann/bare<-lake/bare:@lake"}},
		{name: "duplicate namespaces count once", team: "lake",
			pds:  []pdSpec{teamPD("lake", "a", "lake", specA)},
			nss:  []*corev1.Namespace{user("lake-ann", "lake"), user("lake-ann", "lake")},
			want: []string{"lake-ann/a<-lake/a:A@lake"}},
		{name: "empty team wants nothing", team: "",
			pds: []pdSpec{{ns: "lake", name: "a", labels: map[string]string{LabelSpace: SpaceTeam, LabelTeam: ""}, spec: specA}},
			nss: []*corev1.Namespace{namespace("x", map[string]string{LabelSpace: SpaceUser, LabelTeam: ""}, false)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pds []*unstructured.Unstructured
			for _, p := range tc.pds {
				pds = append(pds, p.build(t))
			}
			got := describe(Desired(tc.team, pds, tc.nss))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Desired\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

func TestSourcesReportsShadowed(t *testing.T) {
	pds := []*unstructured.Unstructured{
		teamPD("zzz", "a", "lake", specB).build(t), teamPD("lake", "a", "lake", specA).build(t), teamPD("lake", "b", "lake", specB).build(t),
	}
	sources, shadowed := Sources("lake", pds)
	if len(sources) != 2 || SourceKey(sources[0]) != "lake/a" || SourceKey(sources[1]) != "lake/b" {
		t.Errorf("sources %v", sources)
	}
	if len(shadowed) != 1 || SourceKey(shadowed[0]) != "zzz/a" {
		t.Errorf("shadowed %v", shadowed)
	}
}

func TestCopyObjectAndApplyTo(t *testing.T) {
	src := teamPD("lake", "b", "lake", specB).build(t)
	c := Desired("lake", []*unstructured.Unstructured{src}, []*corev1.Namespace{user("lake-ann", "lake")})[0]
	obj := c.Object()
	got, _ := obj.MarshalJSON()
	want := `{"apiVersion":"kubeflow.org/v1alpha1","kind":"PodDefault","metadata":{"annotations":{"orbit/source-poddefault":"lake/b"},"labels":{"orbit/space":"user","orbit/team":"lake"},"name":"b","namespace":"lake-ann"},"spec":{"desc":"B","env":[{"name":"X","value":"1"}],"ratio":0.5,"replicas":3,"selector":{"matchLabels":{"orbit/b":""}}}}`
	if strings.TrimSpace(string(got)) != want {
		t.Errorf("Object\n got  %s\n want %s", got, want)
	}
	if !c.Matches(obj) {
		t.Error("a copy's own object does not match it")
	}
	// The copy's spec is its own: changing it does not touch the source.
	unstructured.SetNestedField(obj.Object, "changed", "spec", "desc")
	if d, _, _ := unstructured.NestedString(src.Object, "spec", "desc"); d != "B" {
		t.Errorf("source desc became %q", d)
	}

	// ApplyTo keeps foreign labels, annotations and metadata; replaces spec wholesale.
	stale := decode(t, `{"apiVersion":"kubeflow.org/v1alpha1","kind":"PodDefault","metadata":{"name":"b","namespace":"lake-ann","resourceVersion":"5",
		"labels":{"orbit/space":"user","orbit/team":"ocean","keep":"me"},"annotations":{"orbit/source-poddefault":"ocean/b","note":"x"}},
		"spec":{"desc":"old","volumes":[{"name":"v"}]}}`)
	before, _ := stale.MarshalJSON()
	applied := c.ApplyTo(stale)
	after, _ := stale.MarshalJSON()
	if string(before) != string(after) {
		t.Error("ApplyTo modified its input")
	}
	if !c.Matches(applied) {
		t.Error("ApplyTo's result does not match the copy")
	}
	if applied.GetLabels()["keep"] != "me" || applied.GetAnnotations()["note"] != "x" || applied.GetResourceVersion() != "5" {
		t.Errorf("ApplyTo dropped foreign metadata: %v %v %s", applied.GetLabels(), applied.GetAnnotations(), applied.GetResourceVersion())
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(applied.Object, "spec", "volumes"); found {
		t.Error("ApplyTo kept a spec field the source does not have")
	}
	// A source without spec: ApplyTo removes the spec.
	bare := Copy{Namespace: "lake-ann", Name: "b", Team: "lake", Source: "lake/b"}
	if _, found := bare.ApplyTo(stale).Object["spec"]; found {
		t.Error("spec kept for a source without spec")
	}
	if obj := bare.Object(); obj.Object["spec"] != nil {
		t.Error("Object has a spec for a source without spec")
	}
}

func TestMatches(t *testing.T) {
	c := Copy{Namespace: "lake-ann", Name: "a", Team: "lake", Source: "lake/a", Spec: decode(t, `{"spec":`+specA+`}`).Object["spec"].(map[string]any)}
	for _, tc := range []struct {
		name string
		pd   pdSpec
		want bool
	}{
		{"identical", copyPD("lake-ann", "a", "lake", "lake/a", specA), true},
		{"extra label and annotation", pdSpec{ns: "lake-ann", name: "a",
			labels:      map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake", "x": "y"},
			annotations: map[string]string{AnnotationSource: "lake/a", "n": "m"}, spec: specA}, true},
		{"spec differs", copyPD("lake-ann", "a", "lake", "lake/a", specB), false},
		{"desc differs", copyPD("lake-ann", "a", "lake", "lake/a", strings.Replace(specA, `"A"`, `"Z"`, 1)), false},
		{"extra spec field", copyPD("lake-ann", "a", "lake", "lake/a", strings.Replace(specA, `{"desc"`, `{"x":1,"desc"`, 1)), false},
		{"no spec", copyPD("lake-ann", "a", "lake", "lake/a", ""), false},
		{"other team", copyPD("lake-ann", "a", "ocean", "lake/a", specA), false},
		{"other source", copyPD("lake-ann", "a", "lake", "other/a", specA), false},
		{"team space", pdSpec{ns: "lake-ann", name: "a", labels: map[string]string{LabelSpace: SpaceTeam, LabelTeam: "lake"},
			annotations: map[string]string{AnnotationSource: "lake/a"}, spec: specA}, false},
		{"no annotation", pdSpec{ns: "lake-ann", name: "a", labels: map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake"}, spec: specA}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.Matches(tc.pd.build(t)); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
	empty := Copy{Namespace: "lake-ann", Name: "a", Team: "lake", Source: "lake/a"}
	if !empty.Matches(copyPD("lake-ann", "a", "lake", "lake/a", "").build(t)) || !empty.Matches(copyPD("lake-ann", "a", "lake", "lake/a", "{}").build(t)) {
		t.Error("a copy without spec must match an object without spec or with an empty one")
	}
}

func TestPlan(t *testing.T) {
	srcA := teamPD("lake", "a", "lake", specA)
	srcB := teamPD("lake", "b", "lake", specB)
	users := []*corev1.Namespace{user("lake-ann", "lake"), user("lake-bob", "lake")}
	for _, tc := range []struct {
		name       string
		sources    []pdSpec
		users      []*corev1.Namespace
		existing   []pdSpec
		create     []string
		update     []string
		delete     []string
		conflicts  []string
		wantUpdate string // when set, the spec JSON of every update's object
	}{
		{name: "nothing exists: create all", sources: []pdSpec{srcA, srcB}, users: users,
			create: []string{"lake-ann/a", "lake-ann/b", "lake-bob/a", "lake-bob/b"}},
		{name: "all up to date: nothing", sources: []pdSpec{srcA}, users: users,
			existing: []pdSpec{copyPD("lake-ann", "a", "lake", "lake/a", specA), copyPD("lake-bob", "a", "lake", "lake/a", specA)}},
		{name: "one missing, one stale", sources: []pdSpec{srcA}, users: users,
			existing: []pdSpec{copyPD("lake-ann", "a", "lake", "lake/a", strings.Replace(specA, `"A"`, `"old"`, 1))},
			create:   []string{"lake-bob/a"}, update: []string{"lake-ann/a"}, wantUpdate: specA},
		{name: "source gone: its copies go", sources: []pdSpec{srcA}, users: users,
			existing: []pdSpec{
				copyPD("lake-ann", "a", "lake", "lake/a", specA), copyPD("lake-bob", "a", "lake", "lake/a", specA),
				copyPD("lake-ann", "gone", "lake", "lake/gone", specB), copyPD("lake-bob", "gone", "lake", "lake/gone", specB),
			},
			delete: []string{"lake-ann/gone", "lake-bob/gone"}},
		{name: "user left the team: copies there go", sources: []pdSpec{srcA}, users: users[:1],
			existing: []pdSpec{copyPD("lake-ann", "a", "lake", "lake/a", specA), copyPD("lake-bob", "a", "lake", "lake/a", specA)},
			delete:   []string{"lake-bob/a"}},
		{name: "no users and no sources: every copy goes", existing: []pdSpec{copyPD("lake-ann", "a", "lake", "lake/a", specA)},
			delete: []string{"lake-ann/a"}},
		{name: "user's own poddefault of the same name: conflict, never overwritten or deleted", sources: []pdSpec{srcA}, users: users,
			existing: []pdSpec{
				{ns: "lake-ann", name: "a", labels: map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake"}, spec: specB},
				copyPD("lake-bob", "a", "lake", "lake/a", specA),
			},
			conflicts: []string{"lake-ann/a"}},
		{name: "user's own unlabelled poddefault: conflict", sources: []pdSpec{srcA}, users: users[:1],
			existing:  []pdSpec{{ns: "lake-ann", name: "a", spec: specB}},
			conflicts: []string{"lake-ann/a"}},
		{name: "user poddefaults of other names are not ours to delete", sources: []pdSpec{srcA}, users: users[:1],
			existing: []pdSpec{copyPD("lake-ann", "a", "lake", "lake/a", specA),
				{ns: "lake-ann", name: "mine", labels: map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake"}, spec: specB}}},
		{name: "another team's copy where the namespace now belongs to us: taken over", sources: []pdSpec{srcA}, users: users[:1],
			existing: []pdSpec{copyPD("lake-ann", "a", "ocean", "ocean/a", specB)},
			update:   []string{"lake-ann/a"}, wantUpdate: specA},
		{name: "another team's copies are not ours to delete", users: users[:1],
			existing: []pdSpec{copyPD("lake-ann", "o", "ocean", "ocean/o", specB)}},
		{name: "a copy with a foreign source but our team label is ours to delete", users: users[:1],
			existing: []pdSpec{copyPD("lake-ann", "o", "lake", "nowhere/o", specB)},
			delete:   []string{"lake-ann/o"}},
		{name: "copy being deleted is left to finish, neither recreated nor deleted again", sources: []pdSpec{srcA}, users: users[:1],
			existing: []pdSpec{{ns: "lake-ann", name: "a", labels: map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake"},
				annotations: map[string]string{AnnotationSource: "lake/a"}, spec: specA, deleting: true},
				{ns: "lake-ann", name: "z", labels: map[string]string{LabelSpace: SpaceUser, LabelTeam: "lake"},
					annotations: map[string]string{AnnotationSource: "lake/z"}, spec: specA, deleting: true}}},
		{name: "copy whose labels were edited is repaired", sources: []pdSpec{srcA}, users: users[:1],
			existing: []pdSpec{{ns: "lake-ann", name: "a", labels: map[string]string{"x": "y"},
				annotations: map[string]string{AnnotationSource: "lake/a"}, spec: specA}},
			update: []string{"lake-ann/a"}, wantUpdate: specA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var all []*unstructured.Unstructured
			for _, p := range tc.sources {
				all = append(all, p.build(t))
			}
			byKey := map[string]*unstructured.Unstructured{}
			var owned []*unstructured.Unstructured
			for _, p := range tc.existing {
				u := p.build(t)
				byKey[u.GetNamespace()+"/"+u.GetName()] = u
				// The caller passes what its index holds: here, everything, Plan must filter.
				owned = append(owned, u)
			}
			desired := Desired("lake", all, tc.users)
			ch := Plan("lake", desired, func(ns, name string) *unstructured.Unstructured { return byKey[ns+"/"+name] }, owned)

			var create, update, del, conflicts []string
			for _, c := range ch.Create {
				create = append(create, c.Key())
			}
			for _, u := range ch.Update {
				update = append(update, u.Copy.Key())
				if !u.Copy.Matches(u.Object) {
					t.Errorf("update of %s does not produce the copy", u.Copy.Key())
				}
				if u.Existing != byKey[u.Copy.Key()] {
					t.Errorf("update of %s does not carry the existing object", u.Copy.Key())
				}
				if tc.wantUpdate != "" {
					want := decode(t, `{"spec":`+tc.wantUpdate+`}`).Object["spec"]
					if !equality.Semantic.DeepEqual(u.Object.Object["spec"], want) {
						t.Errorf("update of %s has spec %v", u.Copy.Key(), u.Object.Object["spec"])
					}
				}
			}
			for _, d := range ch.Delete {
				del = append(del, d.GetNamespace()+"/"+d.GetName())
			}
			for _, c := range ch.Conflicts {
				conflicts = append(conflicts, c.Copy.Key())
			}
			for _, cmp := range []struct {
				what      string
				got, want []string
			}{{"create", create, tc.create}, {"update", update, tc.update}, {"delete", del, tc.delete}, {"conflicts", conflicts, tc.conflicts}} {
				if !reflect.DeepEqual(cmp.got, cmp.want) {
					t.Errorf("%s\n got  %q\n want %q", cmp.what, cmp.got, cmp.want)
				}
			}
			if ch.Empty() != (len(tc.create)+len(tc.update)+len(tc.delete) == 0) {
				t.Errorf("Empty = %v", ch.Empty())
			}
		})
	}
}

// Applying a plan's writes to the world and planning again finds nothing to do: the fixed point
// that makes the watcher converge rather than oscillate.
func TestPlanConverges(t *testing.T) {
	sources := []*unstructured.Unstructured{teamPD("lake", "a", "lake", specA).build(t), teamPD("lake", "b", "lake", specB).build(t)}
	users := []*corev1.Namespace{user("lake-ann", "lake"), user("lake-bob", "lake")}
	world := map[string]*unstructured.Unstructured{
		"lake-ann/a":    copyPD("lake-ann", "a", "lake", "lake/a", specB).build(t),
		"lake-ann/gone": copyPD("lake-ann", "gone", "lake", "lake/gone", specB).build(t),
		"lake-bob/b":    copyPD("lake-bob", "b", "ocean", "ocean/b", specA).build(t),
		"lake-bob/mine": {Object: map[string]any{"metadata": map[string]any{"name": "mine", "namespace": "lake-bob"}}},
	}
	lookup := func(ns, name string) *unstructured.Unstructured { return world[ns+"/"+name] }
	all := func() []*unstructured.Unstructured {
		var out []*unstructured.Unstructured
		for _, u := range world {
			out = append(out, u)
		}
		return out
	}
	desired := Desired("lake", sources, users)
	ch := Plan("lake", desired, lookup, all())
	if ch.Empty() {
		t.Fatal("first plan is empty")
	}
	for _, c := range ch.Create {
		world[c.Key()] = c.Object()
	}
	for _, u := range ch.Update {
		world[u.Copy.Key()] = u.Object
	}
	for _, d := range ch.Delete {
		delete(world, d.GetNamespace()+"/"+d.GetName())
	}
	if again := Plan("lake", desired, lookup, all()); !again.Empty() || len(again.Conflicts) != 0 {
		t.Errorf("second plan not empty: %+v", again)
	}
	if len(world) != 5 { // 4 copies and the user's own
		t.Errorf("world has %d objects, want 5", len(world))
	}
}
