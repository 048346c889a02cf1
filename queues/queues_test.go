package queues_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/headroomhq/headroom/queues"
)

func TestValidateName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"gpu-ml-inference", true},
		{"tenant/a:b.c_d", true},
		{"ünïcode-queue", true},
		{"", false},
		{" gpu", false},
		{"gpu ", false},
		{"gpu\n", false},
		{"a\x00b", false},
		{"/_sys/internal", false},
		{strings.Repeat("q", queues.MaxNameLength), true},
		{strings.Repeat("q", queues.MaxNameLength+1), false},
		{"\xff\xfe", false},
	} {
		err := queues.ValidateName(tt.name)
		assert.Equal(t, tt.ok, err == nil, "%q: %v", tt.name, err)
		if err != nil {
			assert.ErrorIs(t, err, queues.ErrInvalidName)
		}
	}
}

func TestRegistry(t *testing.T) {
	r := queues.Default()
	q, err := r.Lookup("gpu-ml-inference")
	require.NoError(t, err)
	assert.Equal(t, queues.GPUMLInference, q)

	_, err = r.Lookup("gpu-ml-inferense")
	require.ErrorIs(t, err, queues.ErrUnknownQueue)
	assert.Contains(t, err.Error(), `did you mean "gpu-ml-inference"?`)

	_, err = r.Lookup("cpu-standrad") // transposed letters are one typo
	assert.ErrorContains(t, err, `did you mean "cpu-standard"?`)

	_, err = r.Lookup("GPU-ML-INFERENCE")
	assert.ErrorContains(t, err, `did you mean "gpu-ml-inference"?`, "case differs: still an unknown queue, with a suggestion")

	_, err = r.Lookup("billing")
	require.ErrorIs(t, err, queues.ErrUnknownQueue)
	assert.Contains(t, err.Error(), "declared: ")

	_, err = r.Lookup(" cpu-standard")
	assert.ErrorIs(t, err, queues.ErrInvalidName)

	gpu80 := queues.Queue{Name: "gpu-80gb", Class: queues.GPU}
	require.NoError(t, r.Declare(gpu80))
	require.NoError(t, r.Declare(gpu80), "declaring the same queue twice is fine")
	err = r.Declare(queues.Queue{Name: "gpu-80gb", Class: queues.CPU})
	assert.ErrorIs(t, err, queues.ErrConflict)
	assert.ErrorIs(t, r.Check(queues.Queue{Name: "gpu-80gb", Class: queues.HighMemory}), queues.ErrConflict)
	assert.NoError(t, r.Check(gpu80))
	assert.ErrorIs(t, r.Declare(queues.Queue{Name: "x"}), queues.ErrInvalidName, "a queue needs a class")
	assert.Len(t, r.Queues(), 5)

	_, err = queues.NewRegistry(queues.Queue{Name: "", Class: queues.CPU})
	assert.ErrorIs(t, err, queues.ErrInvalidName)
}

func FuzzValidateName(f *testing.F) {
	f.Add("gpu-ml-inference")
	f.Add(" x")
	f.Add("/_sys/a")
	f.Fuzz(func(t *testing.T, name string) {
		err := queues.ValidateName(name)
		if err == nil && (name == "" || strings.TrimSpace(name) != name) {
			t.Fatalf("accepted %q", name)
		}
		r := queues.Default()
		q, lerr := r.Lookup(name)
		if lerr == nil && q.Name != name {
			t.Fatalf("lookup of %q returned %q", name, q.Name)
		}
		if lerr != nil && !errors.Is(lerr, queues.ErrUnknownQueue) && !errors.Is(lerr, queues.ErrInvalidName) {
			t.Fatalf("unexpected error kind: %v", lerr)
		}
	})
}
