// The Go peer of the TCP echo benchmark (issue 5, docs/bench.md): the net
// package, one goroutine per connection doing Read / Write, run with
// GOMAXPROCS=1 by bench/run_echo.sh.
//
//	echo_go        listens on 127.0.0.1, a port the system picks, prints
//	               "port N" and serves until killed
package main

import (
	"fmt"
	"net"
	"os"
)

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16384)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo_go:", err)
		os.Exit(1)
	}
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go serve(c) // net.TCPConn sets TCP_NODELAY by default
	}
}
