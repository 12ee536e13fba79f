package testnet

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	mrand "math/rand/v2"
	"net"
	"testing"
	"time"
)

// transferIdle is how long a TCP transfer may go without any progress before it
// is declared stalled. It detects a dead path (e.g. every segment dropped for a
// bad checksum); it is not a speed requirement.
const transferIdle = 30 * time.Second

// ErrNotStarted marks a TryTCPTransfer that failed before any byte moved:
// the server could not listen on its address or the client could not
// connect (a path that does not exist at the moment).
var ErrNotStarted = errors.New("not started")

// TransferResult describes a finished TCPTransfer.
type TransferResult struct {
	Bytes    int64         // bytes sent and verified
	Duration time.Duration // from connect to the server's end of stream (informational)
	SHA256   [32]byte      // digest of the data, equal on both ends
}

// TCPTransfer listens on serverIP (a free port) inside server, connects from
// client, sends nbytes of random data and checks that the server received exactly
// those bytes (count and SHA-256 on both ends). Both endpoints are Go sockets
// opened inside the namespaces (see TryDo), so no subprocess or nc is involved. A
// transfer that makes no progress for 30 s fails with what each end had done.
// serverIP must pass CheckAddr.
func TCPTransfer(t testing.TB, client, server *NS, serverIP string, nbytes int) TransferResult {
	t.Helper()
	RequireDocAddr(t, serverIP)
	res, err := TryTCPTransfer(client, server, serverIP, nbytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("testnet: TCP %s -> %s (%s): %d bytes verified in %v",
		client.Name, server.Name, serverIP, res.Bytes, res.Duration.Round(time.Millisecond))
	return res
}

// TryTCPTransfer is TCPTransfer returning an error instead of failing the test.
func TryTCPTransfer(client, server *NS, serverIP string, nbytes int) (TransferResult, error) {
	if err := CheckAddr(serverIP); err != nil {
		return TransferResult{}, err
	}
	if nbytes < 0 {
		return TransferResult{}, fmt.Errorf("testnet: TCPTransfer: negative size %d", nbytes)
	}
	var ln *net.TCPListener
	if err := server.TryDo(func() error {
		l, err := net.Listen("tcp", net.JoinHostPort(serverIP, "0"))
		if err != nil {
			return err
		}
		ln = l.(*net.TCPListener)
		return nil
	}); err != nil {
		return TransferResult{}, fmt.Errorf("testnet: TCPTransfer: %w: listen on %s in %s: %w", ErrNotStarted, serverIP, server.Name, err)
	}
	defer ln.Close()
	addr := ln.Addr().String()

	type sinkResult struct {
		n   int64
		sum [32]byte
		end time.Time
		err error
	}
	sinkc := make(chan sinkResult, 1)
	go func() {
		var r sinkResult
		defer func() { sinkc <- r }()
		_ = ln.SetDeadline(time.Now().Add(transferIdle))
		c, err := ln.AcceptTCP()
		if err != nil {
			r.err = fmt.Errorf("accept: %w", err)
			return
		}
		defer c.Close()
		h := sha256.New()
		r.n, r.err = copyIdle(h, c, c)
		r.end = time.Now()
		copy(r.sum[:], h.Sum(nil))
	}()

	var conn *net.TCPConn
	start := time.Now()
	if err := client.TryDo(func() error {
		d := net.Dialer{Timeout: transferIdle}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		conn = c.(*net.TCPConn)
		return nil
	}); err != nil {
		ln.Close()
		<-sinkc
		return TransferResult{}, fmt.Errorf("testnet: TCPTransfer: %w: connect from %s to %s: %w", ErrNotStarted, client.Name, addr, err)
	}
	defer conn.Close()

	var seed [32]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return TransferResult{}, fmt.Errorf("testnet: TCPTransfer: seed: %w", err)
	}
	src := io.LimitReader(mrand.NewChaCha8(seed), int64(nbytes))
	h := sha256.New()
	sent, werr := copyIdle(&connWriter{conn, h}, src, conn)
	if werr == nil {
		if err := conn.CloseWrite(); err != nil {
			werr = fmt.Errorf("close write: %w", err)
		}
	}
	if werr != nil {
		conn.Close() // unblock the sink
	}
	sink := <-sinkc
	var want [32]byte
	copy(want[:], h.Sum(nil))
	switch {
	case werr != nil || sink.err != nil:
		return TransferResult{}, fmt.Errorf("testnet: TCPTransfer %s -> %s (%s): client sent %d of %d bytes (%v); server received %d bytes (%v)",
			client.Name, server.Name, addr, sent, nbytes, orOK(werr), sink.n, orOK(sink.err))
	case sink.n != int64(nbytes):
		return TransferResult{}, fmt.Errorf("testnet: TCPTransfer %s -> %s (%s): server received %d bytes, client sent %d",
			client.Name, server.Name, addr, sink.n, nbytes)
	case sink.sum != want:
		return TransferResult{}, fmt.Errorf("testnet: TCPTransfer %s -> %s (%s): %d bytes arrived but their SHA-256 differs: corrupted in transit",
			client.Name, server.Name, addr, sink.n)
	}
	return TransferResult{Bytes: sink.n, Duration: sink.end.Sub(start), SHA256: want}, nil
}

func orOK(err error) any {
	if err == nil {
		return "ok"
	}
	return err
}

// connWriter writes to the connection and hashes what was written.
type connWriter struct {
	c *net.TCPConn
	h hash.Hash
}

func (w *connWriter) Write(p []byte) (int, error) {
	n, err := w.c.Write(p)
	w.h.Write(p[:n])
	return n, err
}

// copyIdle copies src to dst in 64 KiB chunks, moving conn's deadline forward
// before every chunk so that only a lack of progress times out.
func copyIdle(dst io.Writer, src io.Reader, conn net.Conn) (int64, error) {
	buf := make([]byte, 64<<10)
	var total int64
	for {
		if err := conn.SetDeadline(time.Now().Add(transferIdle)); err != nil {
			return total, fmt.Errorf("set deadline: %w", err)
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			m, werr := dst.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, stalled(werr)
			}
		}
		if errors.Is(rerr, io.EOF) {
			return total, nil
		}
		if rerr != nil {
			return total, stalled(rerr)
		}
	}
}

func stalled(err error) error {
	if isTimeout(err) {
		return fmt.Errorf("no progress for %v: %w", transferIdle, err)
	}
	return err
}
