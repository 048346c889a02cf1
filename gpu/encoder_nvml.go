//go:build linux && cgo

package gpu

import "github.com/NVIDIA/go-nvml/pkg/nvml"

// encoderSymbols are the NVML functions the encoder reading uses.
var encoderSymbols = []string{"nvmlDeviceGetEncoderStats", "nvmlDeviceGetEncoderUtilization", "nvmlDeviceGetEncoderCapacity"}

// encoder reads a device's encoder. Each call is made only when the loaded
// library exports it (has, set at Init); NOT_SUPPORTED leaves that part
// unknown.
func encoder(d nvml.Device, has map[string]bool) Encoder {
	if !has["nvmlDeviceGetEncoderStats"] {
		return Encoder{}
	}
	n, _, _, ret := d.GetEncoderStats()
	if ret != nvml.SUCCESS {
		return Encoder{}
	}
	e := Encoder{Known: true, Sessions: n, Utilization: -1, Capacity: [numCodecs]int{-1, -1, -1}}
	if has["nvmlDeviceGetEncoderUtilization"] {
		if u, _, ret := d.GetEncoderUtilization(); ret == nvml.SUCCESS && u <= 100 {
			e.Utilization = int(u)
		}
	}
	if has["nvmlDeviceGetEncoderCapacity"] {
		for c, q := range [numCodecs]nvml.EncoderType{nvml.ENCODER_QUERY_H264, nvml.ENCODER_QUERY_HEVC, nvml.ENCODER_QUERY_AV1} {
			if v, ret := d.GetEncoderCapacity(q); ret == nvml.SUCCESS && v >= 0 && v <= 100 {
				e.Capacity[c] = v
			}
		}
	}
	return e
}
