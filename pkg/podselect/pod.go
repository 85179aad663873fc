package podselect

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	orbitv1 "github.com/orbit-workbench/orbit-controller/pkg/apis/orbit/v1"
)

// PodSelector is a compiled podSelector. The zero value is the empty selector, which matches
// nothing (a PodSetting must say which Pods it is for).
type PodSelector struct {
	labels []labelPair
	reqs   []requirement
}

type labelPair struct{ key, value string }

type operator uint8

const (
	opIn operator = iota + 1
	opNotIn
	opExists
	opNotExists
)

type requirement struct {
	key    string
	op     operator
	values []string // sorted, for In and NotIn
}

// CompilePodSelector checks sel and compiles it. Keys must be label keys (qualified names),
// values label values, and operators one of In, NotIn, Exists, NotExists or DoesNotExist; In
// and NotIn need values and Exists and NotExists take none, as in Kubernetes' own label
// selectors. Such a selector could never match as written, so reporting it beats silently
// never applying the PodSetting. All problems are collected into one *Error.
func CompilePodSelector(sel orbitv1.PodSelector) (*PodSelector, error) {
	var problems []string
	s := &PodSelector{}

	// Sorted keys keep problem lists stable between runs (map order is random).
	keys := make([]string, 0, len(sel.MatchLabels))
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := sel.MatchLabels[k]
		field := fmt.Sprintf("matchLabels[%q]", k)
		problems = append(problems, checkKey(field, k)...)
		problems = append(problems, checkValue(field, v)...)
		s.labels = append(s.labels, labelPair{key: k, value: v})
	}

	for i, e := range sel.MatchExpressions {
		field := fmt.Sprintf("matchExpressions[%d]", i)
		problems = append(problems, checkKey(field+".key", e.Key)...)
		r := requirement{key: e.Key}
		switch e.Operator {
		case orbitv1.OperatorIn:
			r.op = opIn
		case orbitv1.OperatorNotIn:
			r.op = opNotIn
		case orbitv1.OperatorExists:
			r.op = opExists
		case orbitv1.OperatorNotExists, orbitv1.OperatorDoesNotExist:
			r.op = opNotExists
		default:
			problems = append(problems, fmt.Sprintf("%s.operator: unknown operator %q: want %s, %s, %s, %s or %s",
				field, e.Operator, orbitv1.OperatorIn, orbitv1.OperatorNotIn, orbitv1.OperatorExists,
				orbitv1.OperatorNotExists, orbitv1.OperatorDoesNotExist))
			continue
		}
		switch r.op {
		case opIn, opNotIn:
			if len(e.Values) == 0 {
				problems = append(problems, fmt.Sprintf("%s.values: operator %s needs at least one value", field, e.Operator))
			}
			for j, v := range e.Values {
				problems = append(problems, checkValue(fmt.Sprintf("%s.values[%d]", field, j), v)...)
			}
			r.values = slices.Clone(e.Values)
			slices.Sort(r.values)
		case opExists, opNotExists:
			if len(e.Values) != 0 {
				problems = append(problems, fmt.Sprintf("%s.values: operator %s takes no values", field, e.Operator))
			}
		}
		s.reqs = append(s.reqs, r)
	}

	if len(problems) > 0 {
		return nil, &Error{Part: PartPod, Problems: problems}
	}
	return s, nil
}

func checkKey(field, key string) []string {
	errs := validation.IsQualifiedName(key)
	if len(errs) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s: invalid label key %q: %s", field, key, strings.Join(errs, ", "))}
}

func checkValue(field, value string) []string {
	errs := validation.IsValidLabelValue(value)
	if len(errs) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s: invalid label value %q: %s", field, value, strings.Join(errs, ", "))}
}

// Empty reports whether the selector has no terms (and so matches nothing).
func (s *PodSelector) Empty() bool { return len(s.labels) == 0 && len(s.reqs) == 0 }

// Matches reports whether Pod labels satisfy the selector: the Pod has labels, the selector
// is not empty, every matchLabels pair is equal and every matchExpressions term holds (NotIn
// and NotExists hold for an absent key, as in Kubernetes).
func (s *PodSelector) Matches(labels map[string]string) bool {
	if len(labels) == 0 || s.Empty() {
		return false
	}
	for _, p := range s.labels {
		if v, ok := labels[p.key]; !ok || v != p.value {
			return false
		}
	}
	for _, r := range s.reqs {
		v, ok := labels[r.key]
		switch r.op {
		case opIn:
			if !ok || !r.has(v) {
				return false
			}
		case opNotIn:
			if ok && r.has(v) {
				return false
			}
		case opExists:
			if !ok {
				return false
			}
		case opNotExists:
			if ok {
				return false
			}
		}
	}
	return true
}

func (r *requirement) has(v string) bool {
	_, found := slices.BinarySearch(r.values, v)
	return found
}
