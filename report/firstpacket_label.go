package report

// firstPacketHeaders are the summary table's columns of the kernel's time
// to first packet (p50, p99). Figures a VM client node's guest timed under
// software emulation (runs.FirstPacket.Emulated) say so in the header: the
// emulator's times, good for comparing modes and steps within the run,
// not as a real node's.
func firstPacketHeaders(d *Data) []string {
	label := ""
	if firstPacketEmulated(d) {
		label = " (emulated, TCG)"
	}
	return []string{"kernel first packet p50 µs" + label, "kernel first packet p99 µs" + label}
}

// firstPacketReturnHeaders are the summary table's columns of the way
// back (the SYN-ACK's arrival to ESTABLISHED), beside the first packet's
// and labelled alike.
func firstPacketReturnHeaders(d *Data) []string {
	label := ""
	if firstPacketEmulated(d) {
		label = " (emulated, TCG)"
	}
	return []string{"kernel SYN-ACK way back p50 µs" + label, "kernel SYN-ACK way back p99 µs" + label}
}

// firstPacketEmulated reports whether any point of d carries a time to
// first packet timed under emulation.
func firstPacketEmulated(d *Data) bool {
	for _, g := range d.groups {
		for _, p := range g.Points {
			if p.FirstPacket != nil && p.FirstPacket.Emulated {
				return true
			}
		}
	}
	return false
}
