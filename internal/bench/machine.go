package main

//lint:file-ignore U1000 the benchmark sinks and the pointer fields of the allocated objects are written on purpose and never read

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func init() { register(machineRows) }

// machineRows measure the primitives girder's hot paths are made of, on the machine at hand.
// They are not girder's code and have no peer: they say what this machine charges for a clock
// read, a locked instruction or an allocation, so that an absolute figure elsewhere in the table
// (lb's pick cost, a span's start and end) can be read against what it cannot go below here.
func machineRows(*Env) []Row {
	return []Row{
		{Package: "machine", Op: "monotonic clock read (time.Since)", Girder: machineSince},
		{Package: "machine", Op: "wall and monotonic clock read (time.Now)", Girder: machineNow},
		{Package: "machine", Op: "atomic add (a locked instruction)", Girder: machineAdd},
		{Package: "machine", Op: "compare-and-swap", Girder: machineCAS},
		{Package: "machine", Op: "sync.Pool Get and Put", Girder: machinePool},
		{Package: "machine", Op: "uncontended sync.Mutex Lock and Unlock", Girder: machineMutex},
		{Package: "machine", Op: "allocation, 64 bytes with a pointer", Girder: machineAlloc64},
		{Package: "machine", Op: "allocation, 128 bytes with a pointer", Girder: machineAlloc128},
		{Package: "machine", Op: "24 random bytes (3 × math/rand/v2 Uint64, a trace and a span ID)", Girder: machineRand24},
	}
}

// Sinks keep the compiler from removing what the loops compute; they are written, never read.
var (
	machineDur  time.Duration
	machine64   *machineObj64
	machine128  *machineObj128
	machineBase = time.Now()
	machineRand uint64
)

type machineObj64 struct {
	p *int
	_ [7]uint64
}

type machineObj128 struct {
	p *int
	_ [15]uint64
}

func machineSince(b *testing.B) {
	for b.Loop() {
		machineDur += time.Since(machineBase)
	}
}

func machineNow(b *testing.B) {
	for b.Loop() {
		machineDur += time.Duration(time.Now().UnixNano())
	}
}

func machineAdd(b *testing.B) {
	var n atomic.Int64
	for b.Loop() {
		n.Add(1)
	}
	machineDur += time.Duration(n.Load())
}

func machineCAS(b *testing.B) {
	var n atomic.Int64
	for b.Loop() {
		v := n.Load()
		n.CompareAndSwap(v, v+1)
	}
	machineDur += time.Duration(n.Load())
}

func machinePool(b *testing.B) {
	p := sync.Pool{New: func() any { return new(machineObj64) }}
	for b.Loop() {
		p.Put(p.Get())
	}
}

func machineMutex(b *testing.B) {
	var mu sync.Mutex
	for b.Loop() {
		mu.Lock()
		//lint:ignore SA2001 the empty critical section is what is measured
		mu.Unlock()
	}
}

func machineAlloc64(b *testing.B) {
	for b.Loop() {
		machine64 = &machineObj64{}
	}
}

func machineRand24(b *testing.B) {
	for b.Loop() {
		machineRand ^= rand.Uint64() ^ rand.Uint64() ^ rand.Uint64()
	}
}

func machineAlloc128(b *testing.B) {
	for b.Loop() {
		machine128 = &machineObj128{}
	}
}
