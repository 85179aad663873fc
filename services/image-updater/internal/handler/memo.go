package handler

import (
	"sync"

	"github.com/orbit-workbench/orbit-controller/pkg/mirror"
)

// memoSize bounds the remembered images: far more than the distinct images of a cluster, and
// a few hundred KiB at most.
const memoSize = 4096

// memo remembers mirror.Desired per image. The policy is fixed for a handler's life, and a
// cluster runs few distinct images across many Pods, so nearly every lookup is a hit. When
// full it starts over: no eviction bookkeeping on the request path.
type memo struct {
	mu      sync.RWMutex
	limit   int
	entries map[string]desiredResult
}

type desiredResult struct {
	image   string
	changed bool
	err     error
}

func newMemo(limit int) *memo {
	return &memo{limit: limit, entries: make(map[string]desiredResult, limit)}
}

// get returns mirror.Desired(image, p), computing it once per image.
func (m *memo) get(image string, p mirror.Policy) (string, bool, error) {
	m.mu.RLock()
	r, ok := m.entries[image]
	m.mu.RUnlock()
	if ok {
		return r.image, r.changed, r.err
	}
	r.image, r.changed, r.err = mirror.Desired(image, p)
	m.mu.Lock()
	if len(m.entries) >= m.limit {
		clear(m.entries)
	}
	m.entries[image] = r
	m.mu.Unlock()
	return r.image, r.changed, r.err
}
