// The Go side of the benchmarks (issue 2): the same workloads as
// bench/bench_asyncio.c with goroutines, mapped as docs/bench.md describes.
// Standard library only; bench/run.sh builds it offline (GOTOOLCHAIN=local,
// GOPROXY=off, GOCACHE under the build directory) and runs it with
// GOMAXPROCS=1, so Go, like an event loop, runs everything on one thread.
//
//	bench time [ROW ...]   rows switch, create, call_soon, timers
//	bench memory N         N goroutines asleep in time.Sleep(time.Hour)
//
// Prints "RESULT <row> <median ns per op>" (memory: RSS bytes per goroutine).
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	createBatch   = 1000
	callSoonBatch = 1000
	timerBatch    = 10000
)

var (
	reps     = 7
	targetNs = 100e6
)

// (1) context switch: two goroutines handing the processor to each other
// with runtime.Gosched (GOMAXPROCS=1).
func benchSwitch(n int) float64 {
	half := n / 2
	var wg sync.WaitGroup
	pinger := func() {
		for i := 0; i < half; i++ {
			runtime.Gosched()
		}
		wg.Done()
	}
	t0 := time.Now()
	wg.Add(2)
	go pinger()
	go pinger()
	wg.Wait()
	return float64(time.Since(t0).Nanoseconds())
}

// (2) create + complete: batches of goroutines that return at once, joined
// with a WaitGroup.
func benchCreate(n int) float64 {
	var wg sync.WaitGroup
	nop := func() { wg.Done() }
	t0 := time.Now()
	for done := 0; done < n; {
		b := createBatch
		if n-done < b {
			b = n - done
		}
		wg.Add(b)
		for i := 0; i < b; i++ {
			go nop()
		}
		wg.Wait()
		done += b
	}
	return float64(time.Since(t0).Nanoseconds())
}

// (3) call_soon: Go has no event loop, so the closest thing is what a Go
// program does to defer work without a goroutine each: a FIFO of func
// values, appended to and then drained in order (no channel, no lock).
var callbacksRun uint64

type readyQueue struct{ q []func() }

func (r *readyQueue) callSoon(f func()) { r.q = append(r.q, f) }

func (r *readyQueue) runReady() {
	q := r.q
	for i := 0; i < len(q); i++ {
		q[i]()
		q[i] = nil
	}
	r.q = q[:0]
}

func benchCallSoon(n int) float64 {
	var rq readyQueue
	cb := func() { callbacksRun++ }
	t0 := time.Now()
	for done := 0; done < n; {
		b := callSoonBatch
		if n-done < b {
			b = n - done
		}
		for i := 0; i < b; i++ {
			rq.callSoon(cb)
		}
		rq.runReady()
		done += b
	}
	return float64(time.Since(t0).Nanoseconds())
}

// (4) timers: time.AfterFunc with the same varied tiny delays as the C
// program (each fired timer runs its function in a new goroutine).
func timerDelay(i int) time.Duration { return time.Duration((i*7919)%1000) * 10 * time.Nanosecond }

// benchTimers waits with runtime.Gosched rather than blocking: a blocked
// scheduler sleeps in the netpoller, whose timeouts have millisecond
// granularity, until a timer a few microseconds away is due, and that sleep
// would count as the timers' cost.  Staying runnable keeps the scheduler
// checking its timers (as an event loop with ready work does), so the figure
// is CPU time, as in the other runtimes.
func benchTimers(n int) float64 {
	var fired int64
	cb := func() { atomic.AddInt64(&fired, 1) }
	t0 := time.Now()
	for done := 0; done < n; {
		b := timerBatch
		if n-done < b {
			b = n - done
		}
		atomic.StoreInt64(&fired, 0)
		for i := 0; i < b; i++ {
			time.AfterFunc(timerDelay(i), cb)
		}
		for atomic.LoadInt64(&fired) < int64(b) {
			runtime.Gosched()
		}
		done += b
	}
	return float64(time.Since(t0).Nanoseconds())
}

// (5) memory per idle goroutine.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	v, _ := strconv.ParseInt(f[1], 10, 64)
	return v * int64(os.Getpagesize())
}

func benchMemory(n int) {
	runtime.GC()
	rss0 := rssBytes()
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			time.Sleep(time.Hour)
		}()
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond) // let the last ones reach their sleep
	rss1 := rssBytes()
	fmt.Printf("RESULT memory %.1f\n", float64(rss1-rss0)/float64(n))
}

type row struct {
	name   string
	fn     func(int) float64
	startN int
}

var rows = []row{
	{"switch", benchSwitch, 2000},
	{"create", benchCreate, createBatch},
	{"call_soon", benchCallSoon, callSoonBatch},
	{"timers", benchTimers, timerBatch},
}

func measure(r row) {
	n := r.startN
	r.fn(n) // warm-up
	var ns float64
	for {
		ns = r.fn(n)
		if ns >= 20e6 || n >= 1<<34 {
			break
		}
		n *= 2
	}
	n = int(float64(n) * targetNs / ns)
	if n < r.startN {
		n = r.startN
	}
	n -= n % r.startN
	per := make([]float64, reps)
	for i := range per {
		per[i] = r.fn(n) / float64(n)
	}
	sort.Float64s(per)
	fmt.Printf("RESULT %s %.3f\n", r.name, per[len(per)/2])
	fmt.Printf("INFO %s n=%d min=%.3f max=%.3f\n", r.name, n, per[0], per[len(per)-1])
}

func main() {
	if v, err := strconv.Atoi(os.Getenv("BENCH_REPS")); err == nil && v > 0 {
		reps = v
	}
	if v, err := strconv.ParseFloat(os.Getenv("BENCH_TARGET_MS"), 64); err == nil && v > 0 {
		targetNs = v * 1e6
	}
	args := os.Args[1:]
	fmt.Printf("INFO runtime %s GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	switch {
	case len(args) >= 1 && args[0] == "time":
		names := args[1:]
		if len(names) == 0 {
			for _, r := range rows {
				names = append(names, r.name)
			}
		}
		for _, name := range names {
			found := false
			for _, r := range rows {
				if r.name == name {
					measure(r)
					found = true
				}
			}
			if !found {
				fmt.Fprintf(os.Stderr, "bench: unknown row %q\n", name)
				os.Exit(2)
			}
		}
	case len(args) >= 1 && args[0] == "memory":
		n := 100000
		if len(args) > 1 {
			n, _ = strconv.Atoi(args[1])
		}
		benchMemory(n)
	default:
		fmt.Fprintln(os.Stderr, "usage: bench time [ROW...] | memory N")
		os.Exit(2)
	}
}
