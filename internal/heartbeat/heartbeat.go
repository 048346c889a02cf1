// Package heartbeat holds what the pool's and the tuner's interceptors share
// about heartbeating on an activity's behalf.
package heartbeat

import "go.temporal.io/sdk/converter"

// MaxDetails bounds the previous attempt's heartbeat details carried over.
const MaxDetails = 8

// Previous returns the previous attempt's heartbeat details as raw payloads
// (up to MaxDetails), to be resent unchanged so that a heartbeat sent on the
// activity's behalf never replaces its progress; nil if there are none or
// they cannot be read. has and get are the activity's (or its outbound
// interceptor's) HasHeartbeatDetails and GetHeartbeatDetails.
func Previous(has bool, get func(...any) error) []any {
	if !has {
		return nil
	}
	raw := make([]converter.RawValue, MaxDetails)
	ptrs := make([]any, MaxDetails)
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if err := get(ptrs...); err != nil {
		return nil // resend nothing rather than something wrong
	}
	var d []any
	for _, v := range raw {
		if v.Payload() == nil {
			break
		}
		d = append(d, v)
	}
	return d
}
