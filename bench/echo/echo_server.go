// The Go peer of the TCP echo benchmark (issue 5, docs/bench.md): the net
// package, one goroutine per connection doing Read / Write, run with
// GOMAXPROCS=1 by bench/run_echo.sh.  With --tls CERT.pem KEY.pem it serves
// TLS with crypto/tls (tls.NewListener, the default configuration: TLS 1.3
// with any of our clients) for the TLS echo benchmark (bench/run_tls.sh).
//
//	echo_go [--tls CERT.pem KEY.pem]
//	               listens on 127.0.0.1, a port the system picks, prints
//	               "port N" and serves until killed
package main

import (
	"crypto/tls"
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
	var config *tls.Config
	if len(os.Args) == 4 && os.Args[1] == "--tls" {
		cert, err := tls.LoadX509KeyPair(os.Args[2], os.Args[3])
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo_go:", err)
			os.Exit(1)
		}
		config = &tls.Config{Certificates: []tls.Certificate{cert}}
	} else if len(os.Args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: echo_go [--tls CERT.pem KEY.pem]")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo_go:", err)
		os.Exit(1)
	}
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	if config != nil {
		// The handshake runs in serve's first Read, in the connection's goroutine.
		ln = tls.NewListener(ln, config)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go serve(c) // net.TCPConn sets TCP_NODELAY by default
	}
}
