package podselect

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

func req(key, op string, values ...string) orbitv1.SelectorRequirement {
	return orbitv1.SelectorRequirement{Key: key, Operator: op, Values: values}
}

func TestPodSelectorMatches(t *testing.T) {
	nb := map[string]string{"app": "notebook", "orbit/team": "lake", "tier": "gpu"}
	tests := []struct {
		name   string
		sel    orbitv1.PodSelector
		labels map[string]string
		want   bool
	}{
		{"empty selector matches nothing", orbitv1.PodSelector{}, nb, false},
		{"empty maps and lists match nothing", orbitv1.PodSelector{MatchLabels: map[string]string{}, MatchExpressions: []orbitv1.SelectorRequirement{}}, nb, false},
		{"pod without labels matches nothing", orbitv1.PodSelector{MatchLabels: map[string]string{"app": "notebook"}}, nil, false},
		{"pod without labels even for NotExists", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("x", "NotExists")}}, map[string]string{}, false},
		{"matchLabels equal", orbitv1.PodSelector{MatchLabels: map[string]string{"app": "notebook"}}, nb, true},
		{"matchLabels all pairs", orbitv1.PodSelector{MatchLabels: map[string]string{"app": "notebook", "tier": "gpu"}}, nb, true},
		{"matchLabels one differs", orbitv1.PodSelector{MatchLabels: map[string]string{"app": "notebook", "tier": "cpu"}}, nb, false},
		{"matchLabels key missing", orbitv1.PodSelector{MatchLabels: map[string]string{"missing": ""}}, nb, false},
		{"matchLabels empty value present", orbitv1.PodSelector{MatchLabels: map[string]string{"orbit/gpu": ""}}, map[string]string{"orbit/gpu": ""}, true},
		{"matchLabels key with slash", orbitv1.PodSelector{MatchLabels: map[string]string{"orbit/team": "lake"}}, nb, true},
		{"In holds", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("tier", "In", "cpu", "gpu")}}, nb, true},
		{"In value not listed", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("tier", "In", "cpu")}}, nb, false},
		{"In key absent", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("zone", "In", "a")}}, nb, false},
		{"NotIn holds", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("tier", "NotIn", "cpu")}}, nb, true},
		{"NotIn value listed", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("tier", "NotIn", "gpu", "cpu")}}, nb, false},
		{"NotIn key absent holds", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("zone", "NotIn", "a")}}, nb, true},
		{"Exists holds", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("tier", "Exists")}}, nb, true},
		{"Exists absent", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("zone", "Exists")}}, nb, false},
		{"NotExists holds", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("zone", "NotExists")}}, nb, true},
		{"NotExists present", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("tier", "NotExists")}}, nb, false},
		{"DoesNotExist alias holds", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("zone", "DoesNotExist")}}, nb, true},
		{"DoesNotExist alias present", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("tier", "DoesNotExist")}}, nb, false},
		{"all terms hold", orbitv1.PodSelector{
			MatchLabels:      map[string]string{"app": "notebook"},
			MatchExpressions: []orbitv1.SelectorRequirement{req("tier", "In", "gpu"), req("zone", "NotExists"), req("orbit/team", "Exists")},
		}, nb, true},
		{"one term fails", orbitv1.PodSelector{
			MatchLabels:      map[string]string{"app": "notebook"},
			MatchExpressions: []orbitv1.SelectorRequirement{req("tier", "In", "gpu"), req("zone", "Exists")},
		}, nb, false},
		{"matchLabels holds but expression fails", orbitv1.PodSelector{
			MatchLabels:      map[string]string{"app": "notebook"},
			MatchExpressions: []orbitv1.SelectorRequirement{req("tier", "NotIn", "gpu")},
		}, nb, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := CompilePodSelector(tt.sel)
			if err != nil {
				t.Fatalf("CompilePodSelector: %v", err)
			}
			if got := s.Matches(tt.labels); got != tt.want {
				t.Errorf("Matches(%v) = %v, want %v", tt.labels, got, tt.want)
			}
		})
	}
}

func TestCompilePodSelectorErrors(t *testing.T) {
	tests := []struct {
		name string
		sel  orbitv1.PodSelector
		want []string // substrings, one per problem, in order
	}{
		{"unknown operator", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("a", "Equals", "b")}},
			[]string{`matchExpressions[0].operator: unknown operator "Equals"`}},
		{"empty operator", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("a", "")}},
			[]string{`matchExpressions[0].operator: unknown operator ""`}},
		{"lower-case operator", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("a", "in", "b")}},
			[]string{`unknown operator "in"`}},
		{"In without values", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("a", "In")}},
			[]string{"matchExpressions[0].values: operator In needs at least one value"}},
		{"NotIn without values", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("a", "NotIn")}},
			[]string{"operator NotIn needs at least one value"}},
		{"Exists with values", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("a", "Exists", "x")}},
			[]string{"matchExpressions[0].values: operator Exists takes no values"}},
		{"DoesNotExist with values", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("a", "DoesNotExist", "x")}},
			[]string{"operator DoesNotExist takes no values"}},
		{"empty key", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("", "Exists")}},
			[]string{`matchExpressions[0].key: invalid label key ""`}},
		{"bad matchLabels key", orbitv1.PodSelector{MatchLabels: map[string]string{"a b": "c"}},
			[]string{`matchLabels["a b"]: invalid label key "a b"`}},
		{"bad matchLabels value", orbitv1.PodSelector{MatchLabels: map[string]string{"a": "b c"}},
			[]string{`matchLabels["a"]: invalid label value "b c"`}},
		{"bad In value", orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("a", "In", "ok", "not ok")}},
			[]string{`matchExpressions[0].values[1]: invalid label value "not ok"`}},
		{"every problem reported, in order", orbitv1.PodSelector{
			MatchLabels:      map[string]string{"z z": "1", "a a": "1"},
			MatchExpressions: []orbitv1.SelectorRequirement{req("ok", "In", "x"), req("b", "Bogus"), req("c", "Exists", "y")},
		}, []string{`matchLabels["a a"]`, `matchLabels["z z"]`, "matchExpressions[1].operator", "matchExpressions[2].values"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := CompilePodSelector(tt.sel)
			if err == nil {
				t.Fatalf("CompilePodSelector = %+v, want error", s)
			}
			var se *Error
			if !errors.As(err, &se) || se.Part != PartPod {
				t.Fatalf("error %v is not a podSelector *Error", err)
			}
			if len(se.Problems) != len(tt.want) {
				t.Fatalf("problems = %q, want %d matching %q", se.Problems, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(se.Problems[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, se.Problems[i], w)
				}
			}
			if !strings.HasPrefix(err.Error(), "invalid podSelector: ") {
				t.Errorf("Error() = %q, want prefix %q", err.Error(), "invalid podSelector: ")
			}
		})
	}
}

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "nb-0", Namespace: "lake-alice",
			Labels: map[string]string{"app": "jupyter", "sidecar": "proxy", "idx": "0"},
		},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init-perms"}, {Name: "jupyter-init"}},
			Containers:     []corev1.Container{{Name: "jupyter"}, {Name: "jupyter-sidecar"}, {Name: "proxy"}, {Name: "my-jupyter"}},
		},
	}
}

func TestContainerSelectorSelect(t *testing.T) {
	tests := []struct {
		name      string
		sel       *orbitv1.ContainerSelector
		wantInit  []int
		wantCtrs  []int
		wantNone  bool
		wantError bool
	}{
		{name: "nil selector chooses nothing", sel: nil, wantNone: true},
		{name: "empty regex chooses nothing", sel: &orbitv1.ContainerSelector{Regex: ""}, wantNone: true},
		{name: "blank jsonpath chooses nothing", sel: &orbitv1.ContainerSelector{JSONPath: "  "}, wantNone: true},
		{name: "star chooses every container", sel: &orbitv1.ContainerSelector{Regex: "*"}, wantInit: []int{0, 1}, wantCtrs: []int{0, 1, 2, 3}},
		{name: "regex anchored at start", sel: &orbitv1.ContainerSelector{Regex: "jupyter"}, wantInit: []int{1}, wantCtrs: []int{0, 1}},
		{name: "regex not anchored at end", sel: &orbitv1.ContainerSelector{Regex: "jupyter-"}, wantInit: []int{1}, wantCtrs: []int{1}},
		{name: "regex user-anchored at end", sel: &orbitv1.ContainerSelector{Regex: "jupyter$"}, wantCtrs: []int{0}},
		{name: "alternation anchored as a whole", sel: &orbitv1.ContainerSelector{Regex: "proxy|init"}, wantInit: []int{0}, wantCtrs: []int{2}},
		{name: "dot-star chooses all", sel: &orbitv1.ContainerSelector{Regex: ".*"}, wantInit: []int{0, 1}, wantCtrs: []int{0, 1, 2, 3}},
		{name: "inline flags", sel: &orbitv1.ContainerSelector{Regex: "(?i)PROXY"}, wantCtrs: []int{2}},
		{name: "unterminated literal quote", sel: &orbitv1.ContainerSelector{Regex: `\Qjupyter-`}, wantInit: []int{1}, wantCtrs: []int{1}},
		{name: "later match does not count", sel: &orbitv1.ContainerSelector{Regex: "side|my"}, wantCtrs: []int{3}},
		{name: "regex matching nothing", sel: &orbitv1.ContainerSelector{Regex: "zzz"}},
		{name: "jsonpath bare form", sel: &orbitv1.ContainerSelector{JSONPath: "metadata.labels.app"}, wantCtrs: []int{0}},
		{name: "jsonpath template form", sel: &orbitv1.ContainerSelector{JSONPath: "{.metadata.labels.app}"}, wantCtrs: []int{0}},
		{name: "jsonpath dollar form", sel: &orbitv1.ContainerSelector{JSONPath: "$.metadata.labels.sidecar"}, wantCtrs: []int{2}},
		{name: "jsonpath leading dot", sel: &orbitv1.ContainerSelector{JSONPath: ".metadata.labels.sidecar"}, wantCtrs: []int{2}},
		{name: "jsonpath template with dollar", sel: &orbitv1.ContainerSelector{JSONPath: "{$.metadata.labels.app}"}, wantCtrs: []int{0}},
		{name: "jsonpath many results", sel: &orbitv1.ContainerSelector{JSONPath: "{.spec.containers[*].name}"}, wantCtrs: []int{0, 1, 2, 3}},
		{name: "jsonpath reaching init containers", sel: &orbitv1.ContainerSelector{JSONPath: "spec.initContainers[1].name"}, wantInit: []int{1}},
		{name: "jsonpath range template", sel: &orbitv1.ContainerSelector{JSONPath: "{range .spec.initContainers[*]}{.name}{end}"}, wantInit: []int{0, 1}},
		{name: "jsonpath result not a container", sel: &orbitv1.ContainerSelector{JSONPath: "metadata.labels.idx"}},
		{name: "jsonpath missing label chooses nothing", sel: &orbitv1.ContainerSelector{JSONPath: "metadata.labels.absent"}},
		{name: "jsonpath missing field chooses nothing", sel: &orbitv1.ContainerSelector{JSONPath: "{.spec.nosuchfield}"}},
		{name: "jsonpath that cannot be evaluated", sel: &orbitv1.ContainerSelector{JSONPath: "{.metadata.name[0]}"}, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := CompileContainerSelector(tt.sel)
			if err != nil {
				t.Fatalf("CompileContainerSelector: %v", err)
			}
			if s.None() != tt.wantNone {
				t.Errorf("None() = %v, want %v", s.None(), tt.wantNone)
			}
			pod := testPod()
			// Twice: evaluation must leave no state behind (client-go's JSONPath does).
			for range 2 {
				got, err := s.Select(pod)
				if (err != nil) != tt.wantError {
					t.Fatalf("Select error = %v, want error %v", err, tt.wantError)
				}
				if !slices.Equal(got.InitContainers, tt.wantInit) || !slices.Equal(got.Containers, tt.wantCtrs) {
					t.Errorf("Select = init %v containers %v, want init %v containers %v",
						got.InitContainers, got.Containers, tt.wantInit, tt.wantCtrs)
				}
				if got.Empty() != (len(tt.wantInit)+len(tt.wantCtrs) == 0) {
					t.Errorf("Empty() = %v for %+v", got.Empty(), got)
				}
			}
		})
	}
}

func TestCompileContainerSelectorErrors(t *testing.T) {
	tests := []struct {
		name string
		sel  orbitv1.ContainerSelector
		want []string
	}{
		{"unclosed class", orbitv1.ContainerSelector{Regex: "jupyter["}, []string{`regex: invalid regex "jupyter["`}},
		{"unbalanced paren", orbitv1.ContainerSelector{Regex: "a)(b"}, []string{`regex: invalid regex "a)(b"`}},
		{"star with more is not the wildcard", orbitv1.ContainerSelector{Regex: "*abc"}, []string{`regex: invalid regex "*abc"`}},
		{"perl lookahead is not RE2", orbitv1.ContainerSelector{Regex: "(?=x)"}, []string{"regex: invalid regex"}},
		{"unclosed jsonpath template", orbitv1.ContainerSelector{JSONPath: "{.metadata.labels.app"}, []string{`jsonpath: invalid JSONPath "{.metadata.labels.app"`}},
		{"bad jsonpath filter", orbitv1.ContainerSelector{JSONPath: "spec.containers[?(@.name==]"}, []string{"jsonpath: invalid JSONPath"}},
		{"both set", orbitv1.ContainerSelector{Regex: "a", JSONPath: "metadata.name"}, []string{"regex and jsonpath are both set"}},
		{"both set and both bad", orbitv1.ContainerSelector{Regex: "[", JSONPath: "{"},
			[]string{"both set", "regex: invalid regex", "jsonpath: invalid JSONPath"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := CompileContainerSelector(&tt.sel)
			if err == nil {
				t.Fatalf("CompileContainerSelector = %+v, want error", s)
			}
			var se *Error
			if !errors.As(err, &se) || se.Part != PartContainer {
				t.Fatalf("error %v is not a containerSelector *Error", err)
			}
			if len(se.Problems) != len(tt.want) {
				t.Fatalf("problems = %q, want %d matching %q", se.Problems, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(se.Problems[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, se.Problems[i], w)
				}
			}
		})
	}
}

func podSetting(sel orbitv1.PodSelector, cs *orbitv1.ContainerSelector) *orbitv1.PodSetting {
	return &orbitv1.PodSetting{
		ObjectMeta: metav1.ObjectMeta{Name: "ps", Namespace: "lake"},
		Spec:       orbitv1.PodSettingSpec{PodSelector: sel, ContainerSelector: cs},
	}
}

func TestCompile(t *testing.T) {
	good := orbitv1.PodSelector{MatchLabels: map[string]string{"app": "jupyter"}}
	bad := orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("app", "Like", "j")}}
	tests := []struct {
		name                   string
		ps                     *orbitv1.PodSetting
		wantPodErr, wantCtrErr bool
		wantMatch              bool
	}{
		{"nil PodSetting matches nothing", nil, false, false, false},
		{"valid", podSetting(good, &orbitv1.ContainerSelector{Regex: "jup"}), false, false, true},
		{"bad pod selector", podSetting(bad, &orbitv1.ContainerSelector{Regex: "jup"}), true, false, false},
		{"bad container selector", podSetting(good, &orbitv1.ContainerSelector{Regex: "("}), false, true, true},
		{"both bad", podSetting(bad, &orbitv1.ContainerSelector{JSONPath: "{"}), true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Compile(tt.ps)
			if (c.PodErr != nil) != tt.wantPodErr || (c.Pod == nil) != tt.wantPodErr {
				t.Errorf("PodErr = %v, Pod = %v; want error %v", c.PodErr, c.Pod, tt.wantPodErr)
			}
			if (c.ContainerErr != nil) != tt.wantCtrErr || (c.Container == nil) != tt.wantCtrErr {
				t.Errorf("ContainerErr = %v, Container = %v; want error %v", c.ContainerErr, c.Container, tt.wantCtrErr)
			}
			if got := c.MatchesPod(testPod().Labels); got != tt.wantMatch {
				t.Errorf("MatchesPod = %v, want %v", got, tt.wantMatch)
			}
			err := c.Err()
			if (err != nil) != (tt.wantPodErr || tt.wantCtrErr) {
				t.Fatalf("Err() = %v", err)
			}
			// The kinds must stay distinguishable through joining and wrapping.
			wrapped := fmt.Errorf("podsetting lake/ps: %w", err)
			if IsPodSelectorError(wrapped) != tt.wantPodErr {
				t.Errorf("IsPodSelectorError(%v) = %v, want %v", wrapped, !tt.wantPodErr, tt.wantPodErr)
			}
			if IsContainerSelectorError(wrapped) != tt.wantCtrErr {
				t.Errorf("IsContainerSelectorError(%v) = %v, want %v", wrapped, !tt.wantCtrErr, tt.wantCtrErr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := orbitv1.PodSelector{MatchLabels: map[string]string{"app": "jupyter"}}
	tests := []struct {
		name string
		ps   *orbitv1.PodSetting
		want []string
	}{
		{"valid regex", podSetting(good, &orbitv1.ContainerSelector{Regex: "*"}), nil},
		{"valid jsonpath", podSetting(good, &orbitv1.ContainerSelector{JSONPath: "metadata.labels.app"}), nil},
		{"no container selector", podSetting(good, nil), nil},
		// An empty selector is legal (it matches nothing), not an error.
		{"empty pod selector", podSetting(orbitv1.PodSelector{}, nil), nil},
		{"everything wrong", podSetting(
			orbitv1.PodSelector{MatchExpressions: []orbitv1.SelectorRequirement{req("a", "Equals", "b"), req("c", "In")}},
			&orbitv1.ContainerSelector{Regex: "[a"},
		), []string{
			`podSelector.matchExpressions[0].operator: unknown operator "Equals"`,
			"podSelector.matchExpressions[1].values: operator In needs at least one value",
			`containerSelector.regex: invalid regex "[a"`,
		}},
		{"bad jsonpath", podSetting(good, &orbitv1.ContainerSelector{JSONPath: "{.a"}),
			[]string{`containerSelector.jsonpath: invalid JSONPath "{.a"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Validate(tt.ps)
			if len(got) != len(tt.want) {
				t.Fatalf("Validate = %q, want %d lines like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("line %d = %q, want prefix %q", i, got[i], w)
				}
			}
		})
	}
}

// A compiled selector is shared by every request of a webhook; JSONPath evaluation in
// particular must not share evaluator state between them, pooled (no range) or not.
func TestContainerSelectorConcurrent(t *testing.T) {
	for _, tc := range []struct {
		path   string
		pooled bool
	}{
		{"{range .spec.containers[*]}{.name}{end}", false},
		{"{.spec.containers[*].name}", true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			s, err := CompileContainerSelector(&orbitv1.ContainerSelector{JSONPath: tc.path})
			if err != nil {
				t.Fatal(err)
			}
			if (s.pool != nil) != tc.pooled {
				t.Errorf("pooled = %v, want %v", s.pool != nil, tc.pooled)
			}
			pod := testPod()
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for range 8 {
				wg.Go(func() {
					for range 50 {
						got, err := s.Select(pod)
						if err != nil || !slices.Equal(got.Containers, []int{0, 1, 2, 3}) {
							errs <- fmt.Errorf("Select = %+v, %v", got, err)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}
