//go:build !unix

package proxy

import "net"

func connAlive(net.Conn) bool { return true }

func strayBytes(uintptr) bool { return false }
