// Package gpu reads NVIDIA GPU memory through NVML.
//
// A [Source] lists devices with their used and total memory. [NewNVMLSource]
// is the real one; it is built only on linux with cgo, and every other build
// gets a stub that returns [ErrNoGPU]. The adapter follows the rules NVML
// imposes on a long-running process:
//
//   - Init once; after a failed Init no other NVML call is made, Shutdown
//     included (the process would die with a symbol lookup error).
//   - nvmlDeviceGetMemoryInfo_v2 is used only when the library exports it, so
//     that reserved memory is not counted as capacity; older drivers fall back
//     to v1, whose Used includes reserved memory.
//   - MIG-enabled GPUs are listed as their MIG devices, each with its own memory.
//   - GPU_IS_LOST, UNINITIALIZED and driver/library version mismatches make the
//     source report [ErrGPUUnavailable] until a re-Init, retried with
//     exponential backoff, succeeds.
//
// Devices are selected by [NVMLOptions.Devices], else CUDA_VISIBLE_DEVICES,
// else NVIDIA_VISIBLE_DEVICES, else all. NVML itself ignores those variables
// and counts every process on a device, so readings are per device, not per
// process: exactly what admission needs to avoid CUDA out-of-memory.
//   - With each reading it reports why a device should take no new work
//     ([Device.Unhealthy]: a critical Xid within [NVMLOptions.HealthQuiet],
//     uncorrectable ECC errors, a pending page retirement or row remap),
//     each call only where the library exports it; also the device's
//     temperature and heat or power slowdowns ([Device.Slowdown], which
//     do not make it unhealthy), critical Xids counted ([Device.Xids]),
//     and its hardware video encoder ([Device.Encoder]: sessions, engine
//     load, NVML's capacity per codec).
//
// An activity finds the device its slot was budgeted on with
// [LeaseFromContext] (the tuner's interceptor puts it in the context) and
// starts CUDA subprocesses with [Lease.Env].
package gpu
