package dataplane_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tu "github.com/terminator-proxy/terminator/internal/testutil"
	"github.com/terminator-proxy/terminator/pki"
)

// testService is grpc-go's test service (its generated stubs) as the
// member: UnaryCall echoes and answers the status it is asked for, with a
// trailer; it waits "sleep" from the metadata first and reports on ended
// when its context ends early. FullDuplexCall echoes each message at once.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	ended chan error // the context error of a call that ended early
}

func (s *testService) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("sleep"); len(v) == 1 {
		d, _ := time.ParseDuration(v[0])
		select {
		case <-time.After(d):
		case <-ctx.Done():
			s.ended <- ctx.Err()
			return nil, ctx.Err()
		}
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-served-by", "member", "x-authority", strings.Join(md.Get(":authority"), ",")))
	if st := req.GetResponseStatus(); st != nil && st.Code != 0 {
		return nil, status.Error(codes.Code(st.Code), st.Message)
	}
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (s *testService) FullDuplexCall(stream grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if stream.Context().Err() != nil {
				s.ended <- stream.Context().Err()
			}
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// grpcMember serves the test and health services, over TLS when cert is
// set, else h2c.
func grpcMember(t testing.TB, cert *tls.Certificate) (addr string, svc *testService, hs *health.Server) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var opts []grpc.ServerOption
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*cert}})))
	}
	srv := grpc.NewServer(opts...)
	svc = &testService{ended: make(chan error, 4)}
	hs = health.NewServer()
	testgrpc.RegisterTestServiceServer(srv, svc)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), svc, hs
}

// TestGRPCThroughTerminatedHTTPS: gRPC over a TERMINATED_HTTPS listener to
// members spoken to in HTTP/2: over TLS (alpn_protocols offers h2) and
// h2c (h2c: true). Unary calls carry status, message and trailers back;
// server and bidirectional streams flow message by message; a deadline
// and a cancellation reach the member; plain HTTP/2 request trailers reach
// it too.
func TestGRPCThroughTerminatedHTTPS(t *testing.T) {
	tu.NoLeaks(t)
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	memberCert, memberKey := tu.Leaf(t, h.ca, pki.ECDSAP256, "member.example")
	tlsAddr, tlsSvc, tlsHealth := grpcMember(t, &tls.Certificate{Certificate: [][]byte{memberCert.Raw}, PrivateKey: memberKey})
	h2cAddr, h2cSvc, _ := grpcMember(t, nil)
	tu.WriteFile(t, h.dir, "ca.pem", pki.CertPEM(h.ca.Cert))
	member := func(addr string) string {
		host, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf("{address: %s, protocol_port: %s}", host, port)
	}
	h2cBind := fmt.Sprintf("127.0.0.1:%d", tu.FreePort(t))
	h.mustApply(`
listeners:
  - {name: tls, protocol: TERMINATED_HTTPS, bind: "127.0.0.1:0", default_tls_container_ref: "file://{{dir}}/site.pem", default_pool: grpc-tls}
  - {name: h2c, protocol: TERMINATED_HTTPS, bind: "` + h2cBind + `", default_tls_container_ref: "file://{{dir}}/site.pem", default_pool: grpc-h2c}
pools:
  - {name: grpc-tls, tls_enabled: true, alpn_protocols: [h2, http/1.1], ca_tls_container_ref: "file://{{dir}}/ca.pem", members: [` + member(tlsAddr) + `]}
  - {name: grpc-h2c, h2c: true, members: [` + member(h2cAddr) + `]}
`)
	creds := credentials.NewTLS(&tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example"})
	for _, tc := range []struct {
		name, addr string
		svc        *testService
	}{{"tls member", h.addr("127.0.0.1:0"), tlsSvc}, {"h2c member", h.addr(h2cBind), h2cSvc}} {
		t.Run(tc.name, func(t *testing.T) {
			cc, err := grpc.NewClient(tc.addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			client := testgrpc.NewTestServiceClient(cc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			// Unary: payload, then an error status with its message and trailers.
			var trailer metadata.MD
			resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hello")}}, grpc.Trailer(&trailer))
			if err != nil || string(resp.GetPayload().GetBody()) != "hello" || trailer.Get("x-served-by")[0] != "member" {
				t.Fatalf("UnaryCall: %v %v, trailer %v", resp, err, trailer)
			}
			if got := trailer.Get("x-authority"); len(got) != 1 || got[0] != "site.example" && !strings.HasPrefix(got[0], "127.0.0.1:") {
				t.Errorf("member saw :authority %v", got)
			}
			_, err = client.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.FailedPrecondition), Message: "not today"}}, grpc.Trailer(&trailer))
			if st, _ := status.FromError(err); st.Code() != codes.FailedPrecondition || st.Message() != "not today" || trailer.Get("x-served-by")[0] != "member" {
				t.Fatalf("error status: %v, trailer %v", err, trailer)
			}

			// Bidirectional stream: each message answered before the next is sent.
			stream, err := client.FullDuplexCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				msg := fmt.Sprint("message ", i)
				if err := stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(msg)}}); err != nil {
					t.Fatal(err)
				}
				got, err := stream.Recv()
				if err != nil || string(got.GetPayload().GetBody()) != msg {
					t.Fatalf("stream message %d: %v %v", i, got, err)
				}
			}
			_ = stream.CloseSend()
			if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("stream end: %v", err)
			}

			// A deadline: the client gives up at 300 ms, the member's call ends too.
			dctx, dcancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "sleep", "5s"), 300*time.Millisecond)
			start := time.Now()
			_, err = client.UnaryCall(dctx, &testgrpc.SimpleRequest{})
			dcancel()
			if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 2*time.Second {
				t.Fatalf("deadline: %v after %s", err, time.Since(start))
			}
			select {
			case err := <-tc.svc.ended:
				t.Logf("the member's call ended %s after the call began (deadline 300 ms): %v", time.Since(start).Round(time.Millisecond), err)
			case <-time.After(2 * time.Second):
				t.Fatal("the deadline did not reach the member: its call is still waiting")
			}

			// A cancellation mid-stream reaches the member.
			sctx, scancel := context.WithCancel(ctx)
			stream, err = client.FullDuplexCall(sctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = stream.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte("x")}})
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
			scancel()
			select {
			case <-tc.svc.ended:
			case <-time.After(2 * time.Second):
				t.Fatal("the cancellation did not reach the member's stream")
			}
		})
	}

	// Server streaming from the real health service: a status change
	// arrives while the stream is open.
	cc, err := grpc.NewClient(h.addr("127.0.0.1:0"), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	watch, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := watch.Recv(); err != nil || got.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v %v", got, err)
	}
	tlsHealth.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if got, err := watch.Recv(); err != nil || got.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health watch update: %v %v", got, err)
	}
	cancel()

	// Plain HTTP/2: a refused member is skipped, request trailers reach
	// the member, response trailers come back.
	echo := h2cMember(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Got")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Got", r.Trailer.Get("X-Checksum"))
		w.Header().Set(http.TrailerPrefix+"X-Fixed", "yes")
	}))
	h.mustApply(`
listeners:
  - {name: tls, protocol: TERMINATED_HTTPS, bind: "127.0.0.1:0", default_tls_container_ref: "file://{{dir}}/site.pem", default_pool: echo}
pools:
  - {name: echo, h2c: true, members: [` + member(fmt.Sprintf("127.0.0.1:%d", tu.FreePort(t))) + `, ` + echo + `]}
`)
	// The first member refuses connections: every request is retried on
	// the other, as on the HTTP/1.1 path.
	for i := range 4 {
		res, err := h.client("site.example", true).Get("https://" + h.addr("127.0.0.1:0") + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d with one member refusing: %d", i, res.StatusCode)
		}
	}
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, "https://"+h.addr("127.0.0.1:0")+"/", pr)
	req.Trailer = http.Header{"X-Checksum": nil}
	go func() {
		_, _ = pw.Write([]byte("body"))
		req.Trailer.Set("X-Checksum", "c0ffee")
		pw.Close()
	}()
	res, err := h.client("site.example", true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.ProtoMajor != 2 || res.Trailer.Get("X-Got") != "c0ffee" || res.Trailer.Get("X-Fixed") != "yes" {
		t.Fatalf("HTTP/2 trailers: %s, response trailer %v", res.Proto, res.Trailer)
	}
	// An HTTP/1.1 client gets the member's trailers after a chunked body,
	// not in the head.
	res, err = h.client("site.example", false).Get("https://" + h.addr("127.0.0.1:0") + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.ProtoMajor != 1 || string(body) != "body" || res.Trailer.Get("X-Fixed") != "yes" || res.Header.Get("X-Fixed") != "" ||
		strings.Contains(fmt.Sprint(res.Header), "Trailer:") {
		t.Fatalf("HTTP/1.1 trailers: %s %q, header %v, trailer %v", res.Proto, body, res.Header, res.Trailer)
	}
}

// TestGRPCMemberResetIsAGRPCStatus: a member that resets a call's stream
// without answering gives the client a gRPC status, not an HTTP error page
// it cannot read: DEADLINE_EXCEEDED when the call's grpc-timeout has
// passed (grpc-go members reset when their deadline fires, often just
// before the client's own deadline), UNAVAILABLE otherwise.
func TestGRPCMemberResetIsAGRPCStatus(t *testing.T) {
	tu.NoLeaks(t)
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	member := h2cMember(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(strings.TrimSuffix(r.Header.Get("Grpc-Timeout"), "m") + "ms"); err == nil {
			time.Sleep(d) // then reset, as a member whose deadline fired
		}
		panic(http.ErrAbortHandler) // RST_STREAM without a response
	}))
	h.mustApply(`
listeners:
  - {name: tls, protocol: TERMINATED_HTTPS, bind: "127.0.0.1:0", default_tls_container_ref: "file://{{dir}}/site.pem", default_pool: g}
pools:
  - {name: g, h2c: true, members: [` + member + `]}
`)
	cc, err := grpc.NewClient(h.addr("127.0.0.1:0"), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example"})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	_, err = client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("reset without a deadline: %v, want Unavailable", err)
	}
	// A call whose grpc-timeout (200 ms) passes at the member, which then
	// resets: the client, whose own deadline may not have fired yet, reads
	// DEADLINE_EXCEEDED.
	req, _ := http.NewRequest(http.MethodPost, "https://"+h.addr("127.0.0.1:0")+"/grpc.testing.TestService/UnaryCall", strings.NewReader("\x00\x00\x00\x00\x00"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	req.Header.Set("Grpc-Timeout", "200m")
	resp, err := h.client("site.example", true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Grpc-Status") != "4" || resp.Header.Get("Content-Type") != "application/grpc" {
		t.Errorf("reset after the call's grpc-timeout: %d, grpc-status %q (%q), want 200 and 4", resp.StatusCode, resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"))
	}
}

// TestH2MemberSilenceCutsTheStream: timeout_member_data bounds an HTTP/2
// member's silence once its answer has begun, as haproxy's timeout server
// does: the client gets what was sent, then the stream is cut, instead of
// waiting as long as the member stalls.
func TestH2MemberSilenceCutsTheStream(t *testing.T) {
	tu.NoLeaks(t)
	h := newHarness(t)
	h.cert("site.pem", "site.example")
	release := make(chan struct{})
	member := h2cMember(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/no-head" {
			select { // silent from the start
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = io.WriteString(w, "first part;")
		w.(http.Flusher).Flush()
		select { // then silence
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	h.mustApply(`
listeners:
  - {name: tls, protocol: TERMINATED_HTTPS, bind: "127.0.0.1:0", default_tls_container_ref: "file://{{dir}}/site.pem", default_pool: s, timeout_member_data: 400}
pools:
  - {name: s, h2c: true, members: [` + member + `]}
`)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // without the cut: this
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+h.addr("127.0.0.1:0")+"/", nil)
	res, err := h.client("site.example", true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	took := time.Since(start)
	if string(body) != "first part;" || err == nil || took > 3*time.Second {
		t.Fatalf("after %s: body %q, err %v; want the first part, then a cut stream within about 400 ms", took, body, err)
	}
	t.Logf("stream cut %s after the request (timeout_member_data 400 ms): %v", took.Round(time.Millisecond), err)

	// No head at all: a 504 once timeout_member_data has passed.
	start = time.Now()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "https://"+h.addr("127.0.0.1:0")+"/no-head", nil)
	res, err = h.client("site.example", true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if took := time.Since(start); res.StatusCode != http.StatusGatewayTimeout || took > 3*time.Second {
		t.Fatalf("member without a head: %d after %s, want 504 after about 400 ms", res.StatusCode, took)
	}
}

// h2cMember serves handler over HTTP/2 with prior knowledge until the test
// ends and returns it as a pool member entry.
func h2cMember(t *testing.T, handler http.Handler) string {
	t.Helper()
	srv := &http.Server{Handler: handler, Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	return fmt.Sprintf("{address: %s, protocol_port: %s}", host, port)
}

// BenchmarkGRPCPath measures a gRPC unary call (100-byte payload) through
// a TERMINATED_HTTPS listener to an h2c member, grpc-go on both ends, in
// process: compare runs of it with each other, and read terminator's
// share of a -memprofile or -cpuprofile.
func BenchmarkGRPCPath(b *testing.B) {
	h := newBenchHarness(b)
	h.cert("site.pem", "site.example")
	addr, _, _ := grpcMember(b, nil)
	host, port, _ := net.SplitHostPort(addr)
	h.mustApply(oneListener("", fmt.Sprintf("{address: %s, protocol_port: %s}", host, port)) + "    h2c: true\n")
	cc, err := grpc.NewClient(h.addr("127.0.0.1:0"), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: tu.Pool(h.ca), ServerName: "site.example"})))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)
	req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 100)}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.UnaryCall(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
