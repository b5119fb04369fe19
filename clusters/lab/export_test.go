package lab_test

import "net/netip"

type netipAddr = netip.Addr

func parseAddr(s string) (netip.Addr, error) { return netip.ParseAddr(s) }
