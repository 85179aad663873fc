package podsetting

import (
	"bytes"
	"errors"
)

// Why this file exists: jsonpatch.CreatePatch decodes both documents into maps and slices of
// interface{} before diffing, which for a notebook Pod costs several times the rest of the
// request. A PodSetting touches a small part of the Pod, and the JSON the API server sends is
// encoded from the same Go types as ours, so most of the two documents are byte-identical.
// reduce drops those identical parts (object members missing from both sides are not
// diffed; equal array elements become null on both sides, keeping every index) and hands
// CreatePatch only what differs. The patch paths still come from the library.
//
// Invariant: CreatePatch(reduce(a, b)) applied to a gives b, exactly as CreatePatch(a, b)
// would. Any part that is not byte-identical (whitespace, key order, a different escaping of
// a key) is passed on whole, so the library decides what really changed.

// maxReduceDepth bounds recursion on hostile nesting; deeper values are passed on whole.
const maxReduceDepth = 32

var errBadJSON = errors.New("malformed JSON")

// reduce returns the reduced pair for two JSON documents. An error means a structural problem
// in one of them; the caller then diffs the whole documents (and reports the library's error).
func reduce(a, b []byte) (ra, rb []byte, err error) {
	r := reducer{members: make([]member, 0, 128), elems: make([][]byte, 0, 128)}
	r.wa.Grow(len(a) / 4)
	r.wb.Grow(len(b) / 4)
	if err := r.value(trimSpace(a), trimSpace(b), 0); err != nil {
		return nil, nil, err
	}
	return r.wa.Bytes(), r.wb.Bytes(), nil
}

// reducer holds the output and, as arenas, the split objects and arrays of one reduction:
// a level appends its parts at the end and keeps a view of them while deeper levels append
// after it (a view survives the arena growing: it keeps the old backing array).
type reducer struct {
	wa, wb  bytes.Buffer
	members []member
	elems   [][]byte
}

func (r *reducer) value(a, b []byte, depth int) error {
	wa, wb := &r.wa, &r.wb
	if len(a) == 0 || len(b) == 0 {
		return errBadJSON
	}
	switch {
	case depth >= maxReduceDepth:
	case a[0] == '{' && b[0] == '{':
		return r.object(a, b, depth)
	case a[0] == '[' && b[0] == '[':
		return r.array(a, b, depth)
	}
	wa.Write(a)
	wb.Write(b)
	return nil
}

type member struct{ key, val []byte } // key with its quotes, as written

func (r *reducer) object(a, b []byte, depth int) error {
	wa, wb := &r.wa, &r.wb
	ma, err := r.objectMembers(a)
	if err != nil {
		return err
	}
	mb, err := r.objectMembers(b)
	if err != nil {
		return err
	}
	matched := make([]bool, len(ma))
	wa.WriteByte('{')
	wb.WriteByte('{')
	firstA, firstB := true, true
	next := 0 // both documents usually list keys in the same order: try the next one first
	for _, m := range mb {
		i := -1
		if next < len(ma) && !matched[next] && bytes.Equal(ma[next].key, m.key) {
			i = next
		} else {
			i = findMember(ma, matched, m.key)
		}
		if i < 0 { // added
			writeMember(wb, &firstB, m.key)
			wb.Write(m.val)
			continue
		}
		matched[i] = true
		next = i + 1
		if bytes.Equal(ma[i].val, m.val) {
			continue
		}
		writeMember(wa, &firstA, m.key)
		writeMember(wb, &firstB, m.key)
		if err := r.value(ma[i].val, m.val, depth+1); err != nil {
			return err
		}
	}
	for i, m := range ma { // removed (or spelled differently: the library sorts that out)
		if !matched[i] {
			writeMember(wa, &firstA, m.key)
			wa.Write(m.val)
		}
	}
	wa.WriteByte('}')
	wb.WriteByte('}')
	return nil
}

func findMember(ms []member, matched []bool, key []byte) int {
	for i := range ms {
		if !matched[i] && bytes.Equal(ms[i].key, key) {
			return i
		}
	}
	return -1
}

func writeMember(w *bytes.Buffer, first *bool, key []byte) {
	if !*first {
		w.WriteByte(',')
	}
	*first = false
	w.Write(key)
	w.WriteByte(':')
}

func (r *reducer) array(a, b []byte, depth int) error {
	wa, wb := &r.wa, &r.wb
	ea, err := r.arrayElements(a)
	if err != nil {
		return err
	}
	eb, err := r.arrayElements(b)
	if err != nil {
		return err
	}
	wa.WriteByte('[')
	wb.WriteByte('[')
	for i := range max(len(ea), len(eb)) {
		if i > 0 {
			if i < len(ea) {
				wa.WriteByte(',')
			}
			if i < len(eb) {
				wb.WriteByte(',')
			}
		}
		switch {
		case i >= len(eb):
			wa.Write(ea[i])
		case i >= len(ea):
			wb.Write(eb[i])
		case bytes.Equal(ea[i], eb[i]):
			// Same placeholder on both sides: the index stays, the diff sees no change.
			wa.WriteString("null")
			wb.WriteString("null")
		default:
			if err := r.value(ea[i], eb[i], depth+1); err != nil {
				return err
			}
		}
	}
	wa.WriteByte(']')
	wb.WriteByte(']')
	return nil
}

// objectMembers splits an object (starting with '{') into its members.
func (r *reducer) objectMembers(b []byte) ([]member, error) {
	start := len(r.members)
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == '}' {
		return nil, checkEnd(b, i+1)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return nil, errBadJSON
		}
		kEnd, err := stringEnd(b, i)
		if err != nil {
			return nil, err
		}
		key := b[i:kEnd]
		i = skipSpace(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return nil, errBadJSON
		}
		i = skipSpace(b, i+1)
		vEnd, err := valueEnd(b, i)
		if err != nil {
			return nil, err
		}
		r.members = append(r.members, member{key: key, val: b[i:vEnd]})
		i = skipSpace(b, vEnd)
		if i >= len(b) {
			return nil, errBadJSON
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return r.members[start:len(r.members):len(r.members)], checkEnd(b, i+1)
		default:
			return nil, errBadJSON
		}
	}
}

// arrayElements splits an array (starting with '[') into its elements.
func (r *reducer) arrayElements(b []byte) ([][]byte, error) {
	start := len(r.elems)
	i := skipSpace(b, 1)
	if i < len(b) && b[i] == ']' {
		return nil, checkEnd(b, i+1)
	}
	for {
		vEnd, err := valueEnd(b, i)
		if err != nil {
			return nil, err
		}
		r.elems = append(r.elems, b[i:vEnd])
		i = skipSpace(b, vEnd)
		if i >= len(b) {
			return nil, errBadJSON
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return r.elems[start:len(r.elems):len(r.elems)], checkEnd(b, i+1)
		default:
			return nil, errBadJSON
		}
	}
}

// checkEnd insists that a container's closing bracket ends the (trimmed) value.
func checkEnd(b []byte, i int) error {
	if i != len(b) {
		return errBadJSON
	}
	return nil
}

// valueEnd returns the index just past the value starting at b[i]. Scalars are delimited,
// not validated: a scalar that differs between the documents reaches the library, which
// validates it, and one that is byte-identical to the re-encoded Pod is valid by construction.
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errBadJSON
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := stringEnd(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errBadJSON
	case '}', ']', ',', ':':
		return 0, errBadJSON
	default:
		j := i
		for j < len(b) && !isDelim(b[j]) {
			j++
		}
		return j, nil
	}
}

// stringEnd returns the index just past the string whose opening quote is b[i].
func stringEnd(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			break
		}
		q := j + k
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
	return 0, errBadJSON
}

func isDelim(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

func trimSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\r\n")
}
