package gpu

import (
	"errors"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func errorsIsNoGPU(err error) bool { return errors.Is(err, ErrNoGPU) }
