package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/headroomhq/headroom/gpu"
)

// Input is one pipeline's parameters.
type Input struct {
	ID        int
	Rows      int    // records validated and embedded
	DatasetMB int    // in-memory dataset processed by the high-memory stage
	GPUMemMB  uint64 // GPU memory each GPU stage takes while it runs
	LoadTime  time.Duration
	Epochs    int
	OutDir    string
}

// Input limits: what one pipeline may ask of a worker. Larger asks are bad
// input, not work to retry.
const (
	MaxRows      = 10_000_000
	MaxDatasetMB = 1 << 20 // 1 TiB
	MaxGPUMemMB  = 1 << 20
	MaxEpochs    = 100_000
	MaxLoadTime  = time.Hour
)

// ErrInvalidInput is the application error type of bad pipeline input; it
// is not retried.
const ErrInvalidInput = "InvalidInput"

// Validate reports the first field of in that no stage can run with, as a
// non-retryable application error of type ErrInvalidInput naming the field.
// A client in another language that omits a field sends its zero value.
func (in Input) Validate() error {
	for _, c := range []struct {
		field string
		ok    bool
		want  string
		got   any
	}{
		{"Rows", in.Rows > 0 && in.Rows <= MaxRows, fmt.Sprintf("1–%d", MaxRows), in.Rows},
		{"DatasetMB", in.DatasetMB > 0 && in.DatasetMB <= MaxDatasetMB, fmt.Sprintf("1–%d", MaxDatasetMB), in.DatasetMB},
		{"GPUMemMB", in.GPUMemMB <= MaxGPUMemMB, fmt.Sprintf("0–%d", MaxGPUMemMB), in.GPUMemMB},
		{"LoadTime", in.LoadTime >= 0 && in.LoadTime <= MaxLoadTime, "0–" + MaxLoadTime.String(), in.LoadTime},
		{"Epochs", in.Epochs > 0 && in.Epochs <= MaxEpochs, fmt.Sprintf("1–%d", MaxEpochs), in.Epochs},
	} {
		if !c.ok {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("pipeline input %d: %s must be %s, got %v", in.ID, c.field, c.want, c.got), ErrInvalidInput, nil)
		}
	}
	return nil
}

// Stage is what one activity reports.
type Stage struct {
	Name     string
	Queue    string
	Duration time.Duration
	Detail   string
}

// Activities holds what the activities share: what loads the GPU stages'
// models (nil: nothing is loaded, the stages only compute).
type Activities struct {
	Loader Loader
}

func stage(ctx context.Context, name string, start time.Time, detail string) Stage {
	info := activity.GetInfo(ctx)
	return Stage{Name: name, Queue: info.TaskQueue, Duration: time.Since(start), Detail: detail}
}

func records(seed, n int) [][]float64 {
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	out := make([][]float64, n)
	for i := range out {
		r := make([]float64, 16)
		for j := range r {
			r[j] = rng.NormFloat64()
		}
		out[i] = r
	}
	return out
}

// ValidateData checks every record (CPU): finite values, checksummed.
func (a *Activities) ValidateData(ctx context.Context, in Input) (Stage, error) {
	if err := in.Validate(); err != nil {
		return Stage{}, err
	}
	start := time.Now()
	h := sha256.New()
	bad := 0
	for _, r := range records(in.ID, in.Rows) {
		for _, v := range r {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				bad++
			}
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
			h.Write(b[:])
		}
	}
	if bad > 0 {
		return Stage{}, fmt.Errorf("%d invalid values", bad)
	}
	return stage(ctx, "validate_data", start, fmt.Sprintf("%d rows, sha256 %x", in.Rows, h.Sum(nil)[:4])), nil
}

// ProcessLargeDataset really allocates and processes an in-memory dataset
// (high-memory): the tuner sees its footprint.
func (a *Activities) ProcessLargeDataset(ctx context.Context, in Input) (Stage, error) {
	if err := in.Validate(); err != nil {
		return Stage{}, err
	}
	start := time.Now()
	n := in.DatasetMB << 20 / 8
	data := make([]float64, n)
	rng := rand.New(rand.NewPCG(uint64(in.ID), 11))
	for i := range data {
		data[i] = rng.Float64()
		if i%(1<<20) == 0 {
			activity.RecordHeartbeat(ctx, i)
			if err := ctx.Err(); err != nil {
				return Stage{}, err
			}
		}
	}
	var sum, sq float64
	for _, v := range data {
		sum += v
		sq += v * v
	}
	mean := sum / float64(n)
	sample := append([]float64(nil), data[:min(n, 1<<16)]...)
	sort.Float64s(sample)
	detail := fmt.Sprintf("%d MiB, mean %.4f, sd %.4f, median %.4f", in.DatasetMB, mean, math.Sqrt(sq/float64(n)-mean*mean), sample[len(sample)/2])
	return stage(ctx, "process_large_dataset", start, detail), nil
}

// takeGPU loads "the model" on the device the stage's slot was charged to
// (its lease) and says where. A stage that fell back to the CPU queue has
// no lease and loads nothing.
func (a *Activities) takeGPU(ctx context.Context, in Input) (string, func(), error) {
	l, ok := gpu.LeaseFromContext(ctx)
	if !ok {
		return "", func() {}, nil
	}
	where := fmt.Sprintf(" on %s (%s)", l.UUID, l.Name)
	if a.Loader == nil {
		return where, func() {}, nil
	}
	release, err := a.Loader.Load(ctx, l, in.GPUMemMB<<20, in.LoadTime)
	if err != nil {
		return "", nil, err
	}
	return where, release, nil
}

// TrainModel fits a linear model by gradient descent (GPU class).
func (a *Activities) TrainModel(ctx context.Context, in Input) (Stage, error) {
	if err := in.Validate(); err != nil {
		return Stage{}, err
	}
	start := time.Now()
	where, release, err := a.takeGPU(ctx, in)
	if err != nil {
		return Stage{}, err
	}
	defer release()
	xs := records(in.ID, in.Rows)
	w := make([]float64, 16)
	truth := func(r []float64) float64 { return 2*r[0] - r[1] + 0.5*r[2] }
	var loss float64
	for epoch := 0; epoch < in.Epochs; epoch++ {
		grad := make([]float64, len(w))
		loss = 0
		for _, r := range xs {
			var p float64
			for j, v := range r {
				p += w[j] * v
			}
			e := p - truth(r)
			loss += e * e
			for j, v := range r {
				grad[j] += e * v
			}
		}
		for j := range w {
			w[j] -= 0.5 * grad[j] / float64(len(xs))
		}
		activity.RecordHeartbeat(ctx, epoch)
		if err := ctx.Err(); err != nil {
			return Stage{}, err
		}
	}
	return stage(ctx, "train_model", start, fmt.Sprintf("%d epochs, mse %.2e, w0 %.3f%s", in.Epochs, loss/float64(len(xs)), w[0], where)), nil
}

// GenerateEmbeddings projects every record to 8 dimensions (GPU class).
func (a *Activities) GenerateEmbeddings(ctx context.Context, in Input) (Stage, error) {
	if err := in.Validate(); err != nil {
		return Stage{}, err
	}
	start := time.Now()
	where, release, err := a.takeGPU(ctx, in)
	if err != nil {
		return Stage{}, err
	}
	defer release()
	rng := rand.New(rand.NewPCG(99, uint64(in.ID)))
	proj := make([]float64, 16*8)
	for i := range proj {
		proj[i] = rng.NormFloat64() / 4
	}
	var norm float64
	for _, r := range records(in.ID, in.Rows) {
		for k := 0; k < 8; k++ {
			var e float64
			for j, v := range r {
				e += v * proj[j*8+k]
			}
			norm += e * e
		}
	}
	return stage(ctx, "generate_embeddings", start, fmt.Sprintf("%d×8, mean norm² %.3f%s", in.Rows, norm/float64(in.Rows), where)), nil
}

// StoreResults writes a result file (CPU).
func (a *Activities) StoreResults(ctx context.Context, in Input, stages []Stage) (Stage, error) {
	if err := in.Validate(); err != nil {
		return Stage{}, err
	}
	start := time.Now()
	dir := in.OutDir
	if dir == "" {
		dir = os.TempDir()
	}
	p := filepath.Join(dir, fmt.Sprintf("pipeline-%d.json", in.ID))
	b, err := json.MarshalIndent(stages, "", "  ")
	if err != nil {
		return Stage{}, err
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		return Stage{}, err
	}
	return stage(ctx, "store_results", start, p), nil
}
