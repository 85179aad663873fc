package patch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"

	"gomodules.xyz/jsonpatch/v2"
)

// Why this file exists: jsonpatch.CreatePatch decodes both documents into maps and slices of
// interface{} before diffing, which for a notebook Pod costs several times the rest of the
// request. A PodSetting touches a small part of the Pod, and the JSON the API server sends is
// encoded from the same Go types as ours, so most of the two documents are byte-identical.
//
// reduce hands the library two skeletons instead: identical object members are dropped from
// both, identical array elements become null on both sides (keeping every index), and every
// value that differs and is not an object or array on both sides is written as a placeholder —
// 0 in the original, a token in the modified document: the number n+1 for the n-th such value.
// No value of either document reaches the skeletons, so a token can only ever meet a 0 or
// nothing: the library sees exactly where the documents differ and emits the operations with
// their paths (add, replace, remove), and restore puts the modified document's own bytes back
// as each operation's value.
//
// Invariant: the operations applied to a give b, exactly as CreatePatch(a, b)'s would — except
// that members of a which the Go type does not know stay (see shape.go). Any part that is not
// byte-identical (whitespace, key order) is diffed on, so the library decides what really
// changed; objects with duplicate or escaped keys are not reduced at all.

// maxReduceDepth bounds recursion on hostile nesting; deeper values are replaced whole.
const maxReduceDepth = 32

var errBadJSON = errors.New("malformed JSON")

// reduced is what the library diffs, and the values the tokens stand for.
type reduced struct {
	a, b   []byte
	values [][]byte // values[n] is the JSON the token n+1 stands for: slices of b
}

// reduce returns the skeletons of two JSON documents. root is the shape of the Go type both
// encode (see shape.go): a member of a that b lacks is diffed as removed only where that type
// knows the member, and left alone where it does not; nil counts every member as known. An
// error means a structural problem in one of them; the caller then diffs the whole documents
// (and the library reports malformed input).
func reduce(a, b []byte, root *shape) (*reduced, error) {
	a, b = trimSpace(a), trimSpace(b)
	r := reducerPool.Get().(*reducer)
	defer r.release()
	var err error
	if r.ia, err = r.ia.build(a); err != nil {
		return nil, err
	}
	if r.ib, err = r.ib.build(b); err != nil {
		return nil, err
	}
	r.out = &reduced{values: make([][]byte, 0, 16)}
	ea, err := r.ia.valueEnd(a, 0)
	if err != nil || ea != len(a) {
		return nil, errBadJSON
	}
	eb, err := r.ib.valueEnd(b, 0)
	if err != nil || eb != len(b) {
		return nil, errBadJSON
	}
	if err := r.pair(a, span{0, ea}, b, span{0, eb}, root, 0); err != nil {
		return nil, err
	}
	r.out.a = bytes.Clone(r.wa.Bytes())
	r.out.b = bytes.Clone(r.wb.Bytes())
	return r.out, nil
}

// restore replaces each operation's token by the JSON it stands for. Every add and replace
// must carry a token: the skeleton holds no other value the library could copy.
func (r *reduced) restore(ops []jsonpatch.Operation) error {
	for i := range ops {
		op := &ops[i]
		if op.Operation != "add" && op.Operation != "replace" {
			continue
		}
		tok, ok := op.Value.(json.Number)
		if !ok {
			return fmt.Errorf("operation %s %s: value %v is not a placeholder", op.Operation, op.Path, op.Value)
		}
		n, err := strconv.Atoi(string(tok))
		if err != nil || n < 1 || n > len(r.values) {
			return fmt.Errorf("operation %s %s: unknown placeholder %q", op.Operation, op.Path, tok)
		}
		op.Value = json.RawMessage(r.values[n-1])
	}
	return nil
}

var reducerPool = sync.Pool{New: func() any {
	return &reducer{members: make([]member, 0, 128), elems: make([]span, 0, 128)}
}}

// reducer holds the output and, as arenas, the split objects and arrays of one reduction:
// a level appends its parts at the end and keeps a view of them while deeper levels append
// after it (a view survives the arena growing: it keeps the old backing array).
type reducer struct {
	wa, wb  bytes.Buffer
	ia, ib  index
	members []member
	elems   []span
	out     *reduced
}

func (r *reducer) release() {
	if r.wa.Cap() > 1<<20 || cap(r.ia) > 1<<20 || cap(r.ib) > 1<<20 {
		return // keep pooled memory small: one huge Pod must not pin megabytes
	}
	r.wa.Reset()
	r.wb.Reset()
	r.members, r.elems, r.out = r.members[:0], r.elems[:0], nil
	reducerPool.Put(r)
}

// span is a value [start, end) of a document.
type span struct{ start, end int }

type member struct {
	key span // with its quotes, as written
	val span
}

func (r *reducer) pair(a []byte, va span, b []byte, vb span, s *shape, depth int) error {
	if depth < maxReduceDepth {
		switch ca, cb := a[va.start], b[vb.start]; {
		case ca == '{' && cb == '{':
			return r.object(a, va, b, vb, s, depth)
		case ca == '[' && cb == '[':
			return r.array(a, va, b, vb, s, depth)
		}
	}
	r.wa.WriteByte('0')
	r.token(b, vb)
	return nil
}

// token writes the placeholder for b's value v into the modified skeleton.
func (r *reducer) token(b []byte, v span) {
	r.out.values = append(r.out.values, b[v.start:v.end:v.end])
	var digits [20]byte
	r.wb.Write(strconv.AppendInt(digits[:0], int64(len(r.out.values)), 10))
}

func (r *reducer) object(a []byte, va span, b []byte, vb span, s *shape, depth int) error {
	wa, wb := &r.wa, &r.wb
	ma, err := r.objectMembers(&r.ia, a, va)
	if err != nil {
		return err
	}
	mb, err := r.objectMembers(&r.ib, b, vb)
	if err != nil {
		return err
	}
	// A decoder keeps the last of duplicate keys, so matching members by their bytes would
	// diff the wrong ones; such documents (never written by an encoder) are diffed whole.
	if hasDuplicateKeys(a, ma) || hasDuplicateKeys(b, mb) {
		return errBadJSON
	}
	var small [64]bool
	var matched []bool
	if len(ma) > len(small) {
		matched = make([]bool, len(ma))
	} else {
		matched = small[:len(ma)]
	}
	wa.WriteByte('{')
	wb.WriteByte('{')
	firstA, firstB := true, true
	next := 0 // both documents usually list keys in the same order: try the next one first
	for _, m := range mb {
		key := b[m.key.start:m.key.end]
		i := -1
		if next < len(ma) && !matched[next] && bytes.Equal(a[ma[next].key.start:ma[next].key.end], key) {
			i = next
		} else {
			i = findMember(a, ma, matched, key)
		}
		if i < 0 { // added
			writeMember(wb, &firstB, key)
			r.token(b, m.val)
			continue
		}
		matched[i] = true
		next = i + 1
		if bytes.Equal(a[ma[i].val.start:ma[i].val.end], b[m.val.start:m.val.end]) {
			continue
		}
		writeMember(wa, &firstA, a[ma[i].key.start:ma[i].key.end])
		writeMember(wb, &firstB, key)
		_, child := s.member(key)
		if err := r.pair(a, ma[i].val, b, m.val, child, depth+1); err != nil {
			return err
		}
	}
	for i, m := range ma { // removed (or spelled differently: the library sorts that out)
		if matched[i] {
			continue
		}
		if known, _ := s.member(a[m.key.start:m.key.end]); !known {
			continue // a field this binary's types do not know: kept as submitted
		}
		writeMember(wa, &firstA, a[m.key.start:m.key.end])
		wa.WriteByte('0')
	}
	wa.WriteByte('}')
	wb.WriteByte('}')
	return nil
}

// hasDuplicateKeys reports whether two members have the same key as written.
func hasDuplicateKeys(doc []byte, ms []member) bool {
	key := func(m member) []byte { return doc[m.key.start:m.key.end] }
	if len(ms) <= 16 {
		for i := range ms {
			for j := i + 1; j < len(ms); j++ {
				if bytes.Equal(key(ms[i]), key(ms[j])) {
					return true
				}
			}
		}
		return false
	}
	seen := make(map[string]struct{}, len(ms))
	for _, m := range ms {
		if _, dup := seen[string(key(m))]; dup {
			return true
		}
		seen[string(key(m))] = struct{}{}
	}
	return false
}

func findMember(a []byte, ms []member, matched []bool, key []byte) int {
	for i := range ms {
		if !matched[i] && bytes.Equal(a[ms[i].key.start:ms[i].key.end], key) {
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

func (r *reducer) array(a []byte, va span, b []byte, vb span, s *shape, depth int) error {
	wa, wb := &r.wa, &r.wb
	ea, err := r.arrayElements(&r.ia, a, va)
	if err != nil {
		return err
	}
	eb, err := r.arrayElements(&r.ib, b, vb)
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
		case i >= len(eb): // removed
			wa.WriteByte('0')
		case i >= len(ea): // added
			r.token(b, eb[i])
		case bytes.Equal(a[ea[i].start:ea[i].end], b[eb[i].start:eb[i].end]):
			// Same placeholder on both sides: the index stays, the diff sees no change.
			wa.WriteString("null")
			wb.WriteString("null")
		default:
			if err := r.pair(a, ea[i], b, eb[i], s.element(), depth+1); err != nil {
				return err
			}
		}
	}
	wa.WriteByte(']')
	wb.WriteByte(']')
	return nil
}

// objectMembers splits the object v (starting with '{') into its members.
func (r *reducer) objectMembers(ix *index, b []byte, v span) ([]member, error) {
	start := len(r.members)
	last := v.end - 1 // the closing '}'
	i := skipSpace(b, v.start+1)
	if i == last {
		return nil, nil
	}
	for {
		if i >= last || b[i] != '"' {
			return nil, errBadJSON
		}
		keyStart := i
		kEnd, err := ix.valueEnd(b, i)
		if err != nil || kEnd > last {
			return nil, errBadJSON
		}
		// An escape can spell one key two ways ("a" and "\u0061"), which matching by bytes
		// would take for two keys. Encoders never escape the keys of a Pod; anything else is
		// diffed whole.
		if bytes.IndexByte(b[keyStart:kEnd], '\\') >= 0 {
			return nil, errBadJSON
		}
		i = skipSpace(b, kEnd)
		if i >= last || b[i] != ':' {
			return nil, errBadJSON
		}
		i = skipSpace(b, i+1)
		vEnd, err := ix.valueEnd(b, i)
		if err != nil || vEnd > last {
			return nil, errBadJSON
		}
		r.members = append(r.members, member{key: span{keyStart, kEnd}, val: span{i, vEnd}})
		i = skipSpace(b, vEnd)
		switch {
		case i == last:
			return r.members[start:len(r.members):len(r.members)], nil
		case i < last && b[i] == ',':
			i = skipSpace(b, i+1)
		default:
			return nil, errBadJSON
		}
	}
}

// arrayElements splits the array v (starting with '[') into its elements.
func (r *reducer) arrayElements(ix *index, b []byte, v span) ([]span, error) {
	start := len(r.elems)
	last := v.end - 1 // the closing ']'
	i := skipSpace(b, v.start+1)
	if i == last {
		return nil, nil
	}
	for {
		vEnd, err := ix.valueEnd(b, i)
		if err != nil || vEnd > last {
			return nil, errBadJSON
		}
		r.elems = append(r.elems, span{i, vEnd})
		i = skipSpace(b, vEnd)
		switch {
		case i == last:
			return r.elems[start:len(r.elems):len(r.elems)], nil
		case i < last && b[i] == ',':
			i = skipSpace(b, i+1)
		default:
			return nil, errBadJSON
		}
	}
}

// index holds, for every '{', '[' and opening '"' of a document, the offset just past the
// value it opens; zero elsewhere. One pass builds it, so splitting nested values never scans
// the same bytes twice.
type index []int32

// build indexes b, reusing ix's memory, and checks that brackets and strings balance.
func (ix index) build(b []byte) (index, error) {
	if int64(len(b)) > math.MaxInt32 {
		return ix, errBadJSON
	}
	if cap(ix) < len(b) {
		ix = make(index, len(b))
	} else {
		ix = ix[:len(b)]
		clear(ix)
	}
	var stackBuf [64]int32
	stack := stackBuf[:0]
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			end, err := stringEnd(b, i)
			if err != nil {
				return ix, err
			}
			ix[i] = int32(end)
			i = end - 1
		case '{', '[':
			stack = append(stack, int32(i))
		case '}', ']':
			if len(stack) == 0 {
				return ix, errBadJSON
			}
			open := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if (b[open] == '{') != (b[i] == '}') {
				return ix, errBadJSON
			}
			ix[open] = int32(i + 1)
		}
	}
	if len(stack) != 0 {
		return ix, errBadJSON
	}
	return ix, nil
}

// valueEnd returns the offset just past the value starting at b[i]. Scalars are delimited,
// not validated: the original was decoded before it is diffed, and the modified document is
// our own encoding.
func (ix index) valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errBadJSON
	}
	switch b[i] {
	case '"', '{', '[':
		if end := int(ix[i]); end > i {
			return end, nil
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

// stringEnd returns the offset just past the string whose opening quote is b[i].
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
	case ',', '}', ']', ':', '"', '{', '[', ' ', '\t', '\n', '\r':
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
