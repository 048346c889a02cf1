// A tiny stand-in for libnvidia-ml.so.1 used by nvmlstub_test.go. It exercises
// the real cgo path of go-nvml without a GPU. Every call is appended to the
// file named by NVML_STUB_LOG so the test can assert which calls were made.
// NVML_STUB_INIT_RET makes nvmlInit_v2 fail with that code. Built with
// -DWITH_V2 it also exports nvmlDeviceGetMemoryInfo_v2 (a driver >= 510);
// -DWITH_HEALTH the health calls; -DWITH_ENCODER the encoder and thermal ones.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvmlMemory_v2_t;

static struct nvmlDevice_st { int index; } devices[2] = {{0}, {1}};
static const unsigned long long GiB = 1ULL << 30;

static void logcall(const char *name) {
	const char *path = getenv("NVML_STUB_LOG");
	if (!path) return;
	FILE *f = fopen(path, "a");
	if (!f) return;
	fprintf(f, "%s\n", name);
	fclose(f);
}

nvmlReturn_t nvmlInit_v2(void) {
	logcall("nvmlInit_v2");
	const char *ret = getenv("NVML_STUB_INIT_RET");
	return ret ? atoi(ret) : 0;
}
nvmlReturn_t nvmlInit(void) { logcall("nvmlInit"); return nvmlInit_v2(); }
nvmlReturn_t nvmlShutdown(void) { logcall("nvmlShutdown"); return 0; }
const char *nvmlErrorString(nvmlReturn_t r) { logcall("nvmlErrorString"); return "stub error"; }
/* NVML_STUB_LOST_AT=n: the n-th count call reports GPU_IS_LOST (15), as a
 * GPU that fell off the bus does until NVML is initialized again. */
static int counts;
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *n) {
	logcall("nvmlDeviceGetCount_v2");
	const char *lost = getenv("NVML_STUB_LOST_AT");
	if (lost && ++counts == atoi(lost)) return 15;
	*n = 2;
	return 0;
}
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d) {
	logcall("nvmlDeviceGetHandleByIndex_v2");
	if (i > 1) return 2; /* INVALID_ARGUMENT */
	*d = &devices[i];
	return 0;
}
nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *buf, unsigned int len) {
	logcall("nvmlDeviceGetUUID");
	snprintf(buf, len, "GPU-stub-%d", d->index);
	return 0;
}
nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *buf, unsigned int len) {
	logcall("nvmlDeviceGetName");
	snprintf(buf, len, "Stub GPU %d", d->index);
	return 0;
}
nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *cur, unsigned int *pending) {
	logcall("nvmlDeviceGetMigMode");
	return 3; /* NOT_SUPPORTED */
}
nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *m) {
	logcall("nvmlDeviceGetMemoryInfo");
	m->total = 80 * GiB;
	m->used = (unsigned long long)(d->index + 1) * GiB + GiB / 2; /* includes 0.5 GiB reserved */
	m->free = m->total - m->used;
	return 0;
}
#ifdef WITH_V2
nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t d, nvmlMemory_v2_t *m) {
	logcall("nvmlDeviceGetMemoryInfo_v2");
	m->total = 80 * GiB;
	m->reserved = GiB / 2;
	m->used = (unsigned long long)(d->index + 1) * GiB;
	m->free = m->total - m->reserved - m->used;
	return 0;
}
#endif
#ifdef WITH_HEALTH
/* Health calls. NVML_STUB_XID=N queues one critical Xid N event on device 1;
 * NVML_STUB_REMAP_PENDING=i makes device i report a pending row remap. */
typedef struct nvmlEventSet_st *nvmlEventSet_t;
typedef struct {
	nvmlDevice_t device;
	unsigned long long eventType, eventData;
	unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;
static struct nvmlEventSet_st { int queued; } eventSet;

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t *set) {
	logcall("nvmlEventSetCreate");
	eventSet.queued = getenv("NVML_STUB_XID") != NULL;
	*set = &eventSet;
	return 0;
}
nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t d, unsigned long long types, nvmlEventSet_t set) {
	logcall("nvmlDeviceRegisterEvents");
	return 0;
}
nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
	logcall("nvmlEventSetWait_v2");
	if (!set->queued) return 10; /* TIMEOUT */
	set->queued = 0;
	memset(data, 0, sizeof *data);
	data->device = &devices[1];
	data->eventType = 8; /* nvmlEventTypeXidCriticalError */
	data->eventData = strtoull(getenv("NVML_STUB_XID"), NULL, 10);
	return 0;
}
nvmlReturn_t nvmlEventSetWait(nvmlEventSet_t set, nvmlEventData_t *data, unsigned int timeoutms) {
	return nvmlEventSetWait_v2(set, data, timeoutms);
}
nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) { logcall("nvmlEventSetFree"); return 0; }
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t d, int errorType, int counterType, unsigned long long *n) {
	logcall("nvmlDeviceGetTotalEccErrors");
	*n = 0;
	return 0;
}
nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t d, unsigned int *corr, unsigned int *unc, unsigned int *pending, unsigned int *failed) {
	logcall("nvmlDeviceGetRemappedRows");
	const char *p = getenv("NVML_STUB_REMAP_PENDING");
	*corr = 0;
	*unc = 0;
	*pending = p && atoi(p) == d->index;
	*failed = 0;
	return 0;
}
nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t d, int *pending) {
	logcall("nvmlDeviceGetRetiredPagesPendingStatus");
	*pending = 0;
	return 0;
}
#endif
#ifdef WITH_ENCODER
/* Encoder and thermal calls. Device i has NVML_STUB_SESSIONS + i sessions
 * open (default 0 + i), its encoder 25 % busy, H.264 and HEVC capacity
 * 90 and 80 %, no AV1; device 1 is at 84 C in a hardware thermal slowdown. */
nvmlReturn_t nvmlDeviceGetEncoderStats(nvmlDevice_t d, unsigned int *sessions, unsigned int *fps, unsigned int *latency) {
	logcall("nvmlDeviceGetEncoderStats");
	const char *n = getenv("NVML_STUB_SESSIONS");
	*sessions = (n ? atoi(n) : 0) + d->index;
	*fps = 60;
	*latency = 1000;
	return 0;
}
nvmlReturn_t nvmlDeviceGetEncoderUtilization(nvmlDevice_t d, unsigned int *util, unsigned int *periodUs) {
	logcall("nvmlDeviceGetEncoderUtilization");
	*util = 25;
	*periodUs = 167000;
	return 0;
}
nvmlReturn_t nvmlDeviceGetEncoderCapacity(nvmlDevice_t d, int codec, unsigned int *capacity) {
	logcall("nvmlDeviceGetEncoderCapacity");
	if (codec == 2) return 3; /* AV1: NOT_SUPPORTED */
	*capacity = codec == 0 ? 90 : 80;
	return 0;
}
nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t d, int sensor, unsigned int *temp) {
	logcall("nvmlDeviceGetTemperature");
	*temp = d->index ? 84 : 41;
	return 0;
}
nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t d, unsigned long long *reasons) {
	logcall("nvmlDeviceGetCurrentClocksEventReasons");
	*reasons = d->index ? 0x40 | 0x4 : 0x1; /* hw thermal + sw power cap; idle */
	return 0;
}
#endif
