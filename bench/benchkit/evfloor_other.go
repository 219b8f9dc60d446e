//go:build !linux

package main

import "errors"

// evfloor needs epoll: the bench runs on Linux only.
func evfloor(listen, upstream string) error {
	return errors.New("benchkit evfloor: Linux only")
}
