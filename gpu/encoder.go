package gpu

// Codec is a video codec a hardware encoder serves.
type Codec uint8

// Codecs NVENC reports a capacity for.
const (
	H264 Codec = iota
	HEVC
	AV1
	numCodecs
)

// Encoder is a device's hardware video encoder (NVENC) at one reading.
//
// What runs out on an encoder is sessions (drivers cap them per device on
// many boards, and NVML does not say where: the cap shows only as NVENC's
// error 10 when one more session is opened) and engine time. Sessions and
// Utilization are what admission judges; Capacity is reported as the driver
// gives it.
type Encoder struct {
	// Known: the driver reported this device's encoder sessions; false
	// where it does not (no NVENC, a MIG device, a driver without the
	// call).
	Known bool
	// Sessions is how many encoder sessions are open on the device, by
	// every process.
	Sessions int
	// Utilization is the percent of the driver's sample period the encoder
	// was busy; -1 where Known but not reported.
	Utilization int
	// Capacity is NVML's "current capacity of the encoder, as a percentage
	// of maximum encoder capacity", per codec (index by Codec); -1 where
	// Known but not reported (AV1 on boards before Ada).
	Capacity [numCodecs]int
}
