// Command backend is the bench suite's origin: a fixed 1 KiB body on /,
// 1 MiB on /1m, a sink for uploads, and on -grpc (h2c) grpc-go's test
// service, whose UnaryCall echoes the request's payload. It counts requests and new TCP
// connections, served on -stats, so the driver can check that every request
// reached it and that proxies reuse upstream connections.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	stats := flag.String("stats", "127.0.0.1:9002", "stats address (GET / returns 'requests conns')")
	grpcAddr := flag.String("grpc", "", "gRPC (h2c) listen address; empty: none")
	flag.Parse()
	var requests, conns atomic.Int64
	if *grpcAddr != "" {
		gl, err := net.Listen("tcp", *grpcAddr)
		if err != nil {
			log.Fatal(err)
		}
		srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			requests.Add(1)
			return h(ctx, req)
		}))
		testgrpc.RegisterTestServiceServer(srv, echoService{})
		go func() { log.Fatal(srv.Serve(&countingListener{Listener: gl, n: &conns})) }()
	}
	small := strings.Repeat("x", 1024)
	big := strings.Repeat("y", 1<<20)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Method == http.MethodPost {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprintf(w, "%d", n)
			return
		}
		if r.URL.Path == "/1m" {
			_, _ = io.WriteString(w, big)
			return
		}
		_, _ = io.WriteString(w, small)
	})
	srv := &http.Server{
		Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go func() {
		log.Fatal(http.ListenAndServe(*stats, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "%d %d\n", requests.Load(), conns.Load())
		})))
	}()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Serve(ln))
}

// echoService answers UnaryCall with the request's payload.
type echoService struct {
	testgrpc.UnimplementedTestServiceServer
}

func (echoService) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

// countingListener counts accepted connections (gRPC's server has no
// ConnState hook).
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}
