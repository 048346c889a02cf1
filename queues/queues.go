package queues

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Class is the resource class of the work on a queue. Define your own with
// Class("fpga"); the four below have presets.
type Class string

// Resource classes of the resource-routing pattern.
const (
	CPU           Class = "cpu"
	GPU           Class = "gpu"
	HighMemory    Class = "high-memory"
	VideoEncoding Class = "video-encoding"
)

// Queue is a task queue and the class of work it carries.
type Queue struct {
	Name  string
	Class Class
}

func (q Queue) String() string { return q.Name }

// The four queues of the resource-routing pattern.
var (
	CPUStandard           = Queue{Name: "cpu-standard", Class: CPU}
	GPUMLInference        = Queue{Name: "gpu-ml-inference", Class: GPU}
	HighMemoryAnalytics   = Queue{Name: "high-memory-analytics", Class: HighMemory}
	VideoEncodingHardware = Queue{Name: "video-encoding-hardware", Class: VideoEncoding}
)

// Errors, matched with errors.Is.
var (
	ErrInvalidName  = errors.New("queues: invalid task queue name")
	ErrUnknownQueue = errors.New("queues: unknown task queue")
	ErrConflict     = errors.New("queues: task queue declared with two classes")
)

// MaxNameLength is the server's default limit on task queue names (bytes).
const MaxNameLength = 1000

// ValidateName applies Temporal's rules for task queue names, and refuses
// leading or trailing white space, which the server keeps and which makes a
// second, silently different queue.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidName, len(name), MaxNameLength)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidName, name)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: %q has leading or trailing white space", ErrInvalidName, name)
	case strings.HasPrefix(name, "/_sys/"):
		return fmt.Errorf("%w: %q uses the server's reserved /_sys/ prefix", ErrInvalidName, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %q contains a control character", ErrInvalidName, name)
		}
	}
	return nil
}

// Registry holds the declared queues. The zero value is empty and ready;
// it is safe for concurrent use.
type Registry struct {
	mu     sync.RWMutex
	byName map[string]Queue
}

// NewRegistry declares qs in a new registry.
func NewRegistry(qs ...Queue) (*Registry, error) {
	r := &Registry{}
	for _, q := range qs {
		if err := r.Declare(q); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Default returns a new registry holding the four standard queues.
func Default() *Registry {
	r, _ := NewRegistry(CPUStandard, GPUMLInference, HighMemoryAnalytics, VideoEncodingHardware)
	return r
}

// Declare adds q. Declaring the same queue again is a no-op; declaring its
// name with another class is ErrConflict.
func (r *Registry) Declare(q Queue) error {
	if err := ValidateName(q.Name); err != nil {
		return err
	}
	if q.Class == "" {
		return fmt.Errorf("%w: %q has no class", ErrInvalidName, q.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byName == nil {
		r.byName = make(map[string]Queue)
	}
	if old, ok := r.byName[q.Name]; ok && old.Class != q.Class {
		return fmt.Errorf("%w: %q is %s, not %s", ErrConflict, q.Name, old.Class, q.Class)
	}
	r.byName[q.Name] = q
	return nil
}

// Lookup returns the declared queue with this name. For an undeclared name
// the error suggests the closest declared names.
func (r *Registry) Lookup(name string) (Queue, error) {
	r.mu.RLock()
	q, ok := r.byName[name]
	r.mu.RUnlock()
	if ok {
		return q, nil
	}
	if err := ValidateName(name); err != nil {
		return Queue{}, err
	}
	if s := r.Suggest(name); len(s) > 0 {
		return Queue{}, fmt.Errorf("%w: %q (did you mean %s?)", ErrUnknownQueue, name, strings.Join(quoteAll(s), " or "))
	}
	return Queue{}, fmt.Errorf("%w: %q (declared: %s)", ErrUnknownQueue, name, strings.Join(quoteAll(r.names()), ", "))
}

// Check reports whether q is declared exactly (name and class).
func (r *Registry) Check(q Queue) error {
	got, err := r.Lookup(q.Name)
	if err != nil {
		return err
	}
	if got.Class != q.Class {
		return fmt.Errorf("%w: %q is %s, not %s", ErrConflict, q.Name, got.Class, q.Class)
	}
	return nil
}

// Queues returns the declared queues sorted by name.
func (r *Registry) Queues() []Queue {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Queue, 0, len(r.byName))
	for _, q := range r.byName {
		out = append(out, q)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *Registry) names() []string {
	var out []string
	for _, q := range r.Queues() {
		out = append(out, q.Name)
	}
	return out
}

// Suggest returns up to three declared names close to name (edit distance
// at most a third of its length, and at least 2), closest first.
func (r *Registry) Suggest(name string) []string {
	type cand struct {
		name string
		d    int
	}
	limit := max(2, utf8.RuneCountInString(name)/3)
	var cs []cand
	for _, n := range r.names() {
		if d := distance(strings.ToLower(name), strings.ToLower(n)); d <= limit {
			cs = append(cs, cand{n, d})
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int { return a.d - b.d })
	var out []string
	for i := 0; i < len(cs) && i < 3; i++ {
		out = append(out, cs[i].name)
	}
	return out
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = fmt.Sprintf("%q", x)
	}
	return out
}

// distance is the Damerau–Levenshtein (optimal string alignment) distance,
// so a swapped pair of letters counts as one typo.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
