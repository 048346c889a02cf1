package tuner

import "go.temporal.io/sdk/worker"

// permitBlock is how many permits are allocated at once. Permits are never
// reused (the SDK reads one after ReleaseSlot returns and keys a map by it),
// so they are carved from blocks: one allocation per permitBlock
// reservations, the same bytes per reservation as the SDK's fixed-size
// supplier. 170 permits of 24 bytes fill the 4096-byte size class. A block
// lives while any of its permits is held.
const permitBlock = 170

// permits carves permits and recycles slot records for one supplier.
// Guarded by Controller.mu.
type permits struct {
	block  *[permitBlock]worker.SlotPermit
	next   int
	free   []*slot // free[:nfree] are released records
	nfree  int
	carved uint64
}

// take returns a slot record bound to a new permit.
func (p *permits) take(k *class) *slot {
	var sl *slot
	if p.nfree > 0 {
		p.nfree--
		sl = p.free[p.nfree]
	} else {
		sl = &slot{cls: k}
	}
	if p.block == nil || p.next == permitBlock {
		p.block, p.next = new([permitBlock]worker.SlotPermit), 0
	}
	pm := &p.block[p.next]
	p.next++
	p.carved++
	pm.UserData = sl
	sl.permit = pm
	return sl
}

// put recycles a released record.
func (p *permits) put(sl *slot) {
	sl.permit = nil
	if p.nfree == len(p.free) {
		p.free = append(p.free, sl)
	} else {
		p.free[p.nfree] = sl
	}
	p.nfree++
}
