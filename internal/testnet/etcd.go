package testnet

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Etcd is a single-member etcd server (Debian's etcd-server) running in a
// test namespace, with its data in a temporary directory. Stop and Start
// restart it on the same data, as an outage would.
type Etcd struct {
	// Endpoint is the client URL, http://IP:2379 (https:// with TLS).
	Endpoint string
	// TLS is the certificates of a server started by StartEtcdTLS, nil
	// otherwise.
	TLS  *EtcdTLS
	ns   *NS
	ip   string
	dir  string
	proc *Proc
	t    testing.TB
}

// StartEtcd starts etcd in ns listening on ip (which must already be an
// address of ns, from the documentation ranges) and waits until it serves.
// It is stopped at cleanup. The test fails (or skips, see SkipOrFail) when
// etcd is not installed.
func StartEtcd(t testing.TB, ns *NS, ip string) *Etcd {
	t.Helper()
	RequireDocAddr(t, ip)
	if _, err := exec.LookPath("etcd"); err != nil {
		SkipOrFail(t, "etcd not installed (Debian: apt-get install etcd-server)")
	}
	e := &Etcd{Endpoint: "http://" + net.JoinHostPort(ip, "2379"), ns: ns, ip: ip, dir: t.TempDir(), t: t}
	e.Start()
	return e
}

// StartEtcdTLS is StartEtcd with clients served over TLS: the server
// presents a certificate for ip signed by tls's CA and requires client
// certificates signed by it.
func StartEtcdTLS(t testing.TB, ns *NS, ip string, tls *EtcdTLS) *Etcd {
	t.Helper()
	RequireDocAddr(t, ip)
	if _, err := exec.LookPath("etcd"); err != nil {
		SkipOrFail(t, "etcd not installed (Debian: apt-get install etcd-server)")
	}
	e := &Etcd{Endpoint: "https://" + net.JoinHostPort(ip, "2379"), TLS: tls, ns: ns, ip: ip, dir: t.TempDir(), t: t}
	e.Start()
	return e
}

// Start (re)starts the server on its data directory and waits until it
// answers.
func (e *Etcd) Start() {
	t := e.t
	t.Helper()
	peer := "http://" + net.JoinHostPort(e.ip, "2380")
	args := []string{"etcd", "--name", "vxt",
		"--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.Endpoint, "--advertise-client-urls", e.Endpoint,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "vxt=" + peer, "--initial-cluster-state", "new",
		"--log-level", "warn"}
	if e.TLS != nil {
		args = append(args, "--cert-file", e.TLS.ServerCert, "--key-file", e.TLS.ServerKey,
			"--trusted-ca-file", e.TLS.CAFile, "--client-cert-auth")
	}
	e.proc = e.ns.Start(t, args...)
	cli := e.Client(t)
	Eventually(t, 20*time.Second, func() error {
		if e.proc.Exited() {
			return Permanent(fmt.Errorf("etcd exited: %s", e.proc.Output()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "/health-probe")
		return err
	})
}

// Stop stops the server (SIGTERM, then SIGKILL), keeping its data.
func (e *Etcd) Stop() { e.proc.Stop() }

// Wipe deletes the data of a stopped server: the next Start begins a new
// cluster, its revisions from 1 again, every lease gone, as after a
// disaster restored from nothing.
func (e *Etcd) Wipe(t testing.TB) {
	t.Helper()
	if !e.proc.Exited() {
		t.Fatal("testnet: Wipe of a running etcd; Stop it first")
	}
	if err := os.RemoveAll(filepath.Join(e.dir, "data")); err != nil {
		t.Fatal(err)
	}
}

// Client returns a client of the server for the test process itself, which
// runs outside the namespace: its connections are dialled from inside it.
// The client is closed at cleanup.
func (e *Etcd) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	dial := func(ctx context.Context, addr string) (net.Conn, error) { return e.ns.DialContext(ctx, "tcp", addr) }
	var tc *tls.Config
	if e.TLS != nil {
		tc = e.TLS.ClientConfig(t)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{e.Endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(), // retries while etcd is stopped are expected
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)},
		TLS:         tc,
	})
	if err != nil {
		t.Fatalf("testnet: etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
