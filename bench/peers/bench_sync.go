// The Go side of bench/bench_sync.c (issue 4): the same three workloads with
// channels and sync.Mutex.  Standard library only; bench/run_sync.sh builds
// it offline (GOTOOLCHAIN=local, GOPROXY=off, caches under the build tree)
// and runs it with GOMAXPROCS=1, so that Go, like an event loop, runs every
// goroutine on one thread.
//
//	bench_sync time [ROW ...]   rows pingpong, mpmc, lock
//
//	pingpong  two goroutines bounce a value through two unbuffered channels;
//	          ns per round trip
//	mpmc      4 producers, 4 consumers, one channel of capacity 128, closed
//	          when the producers are done; ns per item
//	lock      4 goroutines take turns on a sync.Mutex, each holding it across
//	          runtime.Gosched(); ns per Lock/Unlock
//
// Prints "RESULT <row> <median ns per op>".
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

const (
	mpmcProducers = 4
	mpmcConsumers = 4
	mpmcCap       = 128
	lockTasks     = 4
)

var (
	reps     = 7
	targetNs = 100e6
)

func benchPingpong(n int) float64 {
	to := make(chan int)
	from := make(chan int)
	t0 := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			from <- <-to
		}
	}()
	for i := 0; i < n; i++ {
		to <- i
		<-from
	}
	return float64(time.Since(t0).Nanoseconds())
}

func benchMpmc(n int) float64 {
	per := n / mpmcProducers
	ch := make(chan int, mpmcCap)
	var prod, cons sync.WaitGroup
	counts := make([]int, mpmcConsumers)
	t0 := time.Now()
	cons.Add(mpmcConsumers)
	for c := 0; c < mpmcConsumers; c++ {
		go func(c int) {
			for range ch {
				counts[c]++
			}
			cons.Done()
		}(c)
	}
	prod.Add(mpmcProducers)
	for p := 0; p < mpmcProducers; p++ {
		go func() {
			for i := 0; i < per; i++ {
				ch <- i + 1
			}
			prod.Done()
		}()
	}
	prod.Wait()
	close(ch)
	cons.Wait()
	ns := float64(time.Since(t0).Nanoseconds())
	total := 0
	for _, c := range counts {
		total += c
	}
	if total != per*mpmcProducers {
		fmt.Fprintln(os.Stderr, "bench_sync: mpmc: items lost")
		os.Exit(1)
	}
	return ns
}

func benchLock(n int) float64 {
	per := n / lockTasks
	var mu sync.Mutex
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(lockTasks)
	for k := 0; k < lockTasks; k++ {
		go func() {
			for i := 0; i < per; i++ {
				mu.Lock()
				runtime.Gosched() // hold it across a switch: the others queue
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return float64(time.Since(t0).Nanoseconds())
}

type row struct {
	name   string
	fn     func(n int) float64
	startN int
}

var rows = []row{
	{"pingpong", benchPingpong, 1000},
	{"mpmc", benchMpmc, 1000 * mpmcProducers},
	{"lock", benchLock, 1000 * lockTasks},
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
	if len(args) < 1 || args[0] != "time" {
		fmt.Fprintln(os.Stderr, "usage: bench_sync time [ROW...]")
		os.Exit(2)
	}
	fmt.Printf("INFO runtime %s GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
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
			fmt.Fprintf(os.Stderr, "bench_sync: unknown row %q\n", name)
			os.Exit(2)
		}
	}
}
