package main

import "github.com/alicebob/miniredis/v2"

func startMiniredis() (addr string, stop func(), err error) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return "", nil, err
	}
	return m.Addr(), m.Close, nil
}
