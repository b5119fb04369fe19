//go:build linux

package loadgen

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func unsafePointer(its *unix.ItimerSpec) unsafe.Pointer { return unsafe.Pointer(its) }
