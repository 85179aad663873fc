package podselect

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/jsonpath"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// AllContainers is the regex that chooses every container. It is not valid RE2 (nor was it
// valid in the original's Python), so it is recognised before compiling.
const AllContainers = "*"

// ContainerSelector is a compiled containerSelector. The zero value selects no container.
type ContainerSelector struct {
	all bool
	re  *regexp.Regexp
	// jsonPath is the normalised template. client-go's JSONPath evaluator keeps per-run
	// state in the object and, inside {range}, rewrites its own parse tree, so an evaluator
	// is never shared by concurrent requests. Templates without range/end leave no state
	// behind, so their evaluators are pooled (parsing is a good part of the cost); the others
	// are parsed anew for every evaluation.
	jsonPath string
	pool     *sync.Pool
}

// Selection holds the indices of the chosen containers in pod.Spec.InitContainers and
// pod.Spec.Containers, in ascending order.
type Selection struct {
	InitContainers []int
	Containers     []int
}

// Empty reports whether no container was chosen.
func (s Selection) Empty() bool { return len(s.InitContainers) == 0 && len(s.Containers) == 0 }

// CompileContainerSelector checks cs and compiles it. A nil selector, or one with an empty
// regex and no JSONPath, selects nothing. The regex is Go RE2 matched from the start of the
// container name (not to its end, like the original's re.match); "*" means every container.
// The JSONPath may be written as a kubectl template ("{.metadata.labels.app}") or in the
// original's bare form ("metadata.labels.app", "$.metadata.labels.app"). Setting both a regex
// and a JSONPath is ambiguous and reported as a problem rather than silently picking one.
func CompileContainerSelector(cs *orbitv1.ContainerSelector) (*ContainerSelector, error) {
	if cs == nil {
		return &ContainerSelector{}, nil
	}
	var problems []string
	s := &ContainerSelector{}
	regex, path := cs.Regex, strings.TrimSpace(cs.JSONPath)
	if regex != "" && path != "" {
		problems = append(problems, "regex and jsonpath are both set: set one of them")
	}
	switch {
	case regex == AllContainers:
		s.all = true
	case regex != "":
		re, err := regexp.Compile(regex)
		if err != nil {
			problems = append(problems, fmt.Sprintf("regex: invalid regex %q: %v", regex, err))
			break
		}
		// Not wrapped in "^(?:...)": a trailing \Q quote would swallow the closing paren.
		// Anchoring is checked on the match instead (see matchesFromStart).
		s.re = re
	}
	if path != "" {
		tmpl := normaliseJSONPath(path)
		if p, err := jsonpath.Parse("containerSelector", tmpl); err != nil {
			problems = append(problems, fmt.Sprintf("jsonpath: invalid JSONPath %q: %v", cs.JSONPath, err))
		} else {
			s.jsonPath = tmpl
			if !hasIdentifier(p.Root) {
				s.pool = &sync.Pool{New: func() any { return s.newEvaluator() }}
			}
		}
	}
	if len(problems) > 0 {
		return nil, &Error{Part: PartContainer, Problems: problems}
	}
	return s, nil
}

// normaliseJSONPath turns the original's bare form into a kubectl template: a path without
// braces is one expression, "$" and a leading dot optional.
func normaliseJSONPath(p string) string {
	if strings.ContainsAny(p, "{}") {
		return p
	}
	if strings.HasPrefix(p, "$") || strings.HasPrefix(p, ".") || strings.HasPrefix(p, "[") {
		return "{" + p + "}"
	}
	return "{." + p + "}"
}

// None reports whether the selector can choose no container at all (no selector given).
func (s *ContainerSelector) None() bool { return !s.all && s.re == nil && s.jsonPath == "" }

// Select evaluates the selector against pod and returns the chosen containers; init containers
// and containers are both candidates. A JSONPath whose fields are missing from the Pod chooses
// nothing; an error is returned only when the JSONPath cannot be evaluated against this Pod
// (e.g. indexing into a string), which the caller treats like a bad selector.
func (s *ContainerSelector) Select(pod *corev1.Pod) (Selection, error) {
	var sel Selection
	switch {
	case s.all:
		sel.InitContainers = indices(len(pod.Spec.InitContainers))
		sel.Containers = indices(len(pod.Spec.Containers))
	case s.re != nil:
		for i := range pod.Spec.InitContainers {
			if matchesFromStart(s.re, pod.Spec.InitContainers[i].Name) {
				sel.InitContainers = append(sel.InitContainers, i)
			}
		}
		for i := range pod.Spec.Containers {
			if matchesFromStart(s.re, pod.Spec.Containers[i].Name) {
				sel.Containers = append(sel.Containers, i)
			}
		}
	case s.jsonPath != "":
		names, err := s.names(pod)
		if err != nil {
			return Selection{}, err
		}
		for i := range pod.Spec.InitContainers {
			if contains(names, pod.Spec.InitContainers[i].Name) {
				sel.InitContainers = append(sel.InitContainers, i)
			}
		}
		for i := range pod.Spec.Containers {
			if contains(names, pod.Spec.Containers[i].Name) {
				sel.Containers = append(sel.Containers, i)
			}
		}
	}
	return sel, nil
}

// matchesFromStart reports whether re matches a prefix of name, like Python's re.match: the
// leftmost match starts at 0 exactly when some match does.
func matchesFromStart(re *regexp.Regexp, name string) bool {
	loc := re.FindStringIndex(name)
	return loc != nil && loc[0] == 0
}

// names evaluates the JSONPath against the typed Pod (the evaluator follows json tags, so no
// re-encoding is needed) and collects the string results; a list of strings counts as
// several names, any other value is ignored.
func (s *ContainerSelector) names(pod *corev1.Pod) ([]string, error) {
	var jp *jsonpath.JSONPath
	if s.pool != nil {
		jp = s.pool.Get().(*jsonpath.JSONPath)
		defer s.pool.Put(jp)
	} else {
		jp = s.newEvaluator()
	}
	results, err := jp.FindResults(pod)
	if err != nil {
		return nil, fmt.Errorf("evaluate JSONPath %q: %w", s.jsonPath, err)
	}
	var names []string
	for _, rs := range results {
		for _, v := range rs {
			names = appendNames(names, v)
		}
	}
	return names, nil
}

// newEvaluator parses the template, which compiled once already and so cannot fail; a nil
// parse tree would make FindResults return an error rather than panic.
func (s *ContainerSelector) newEvaluator() *jsonpath.JSONPath {
	jp := jsonpath.New("containerSelector").AllowMissingKeys(true)
	_ = jp.Parse(s.jsonPath)
	return jp
}

// hasIdentifier reports whether a parse tree uses range or end, the constructs that make an
// evaluator stateful.
func hasIdentifier(n jsonpath.Node) bool {
	switch n := n.(type) {
	case *jsonpath.IdentifierNode:
		return true
	case *jsonpath.ListNode:
		for _, c := range n.Nodes {
			if hasIdentifier(c) {
				return true
			}
		}
	}
	return false
}

func appendNames(names []string, v reflect.Value) []string {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			return names
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.String:
		return append(names, v.String())
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			e := v.Index(i)
			for e.Kind() == reflect.Interface && !e.IsNil() {
				e = e.Elem()
			}
			if e.Kind() == reflect.String {
				names = append(names, e.String())
			}
		}
	}
	return names
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func indices(n int) []int {
	if n == 0 {
		return nil
	}
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
