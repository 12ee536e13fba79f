// Package etcdconn opens the etcd client of the daemon's control planes
// from the [etcd] settings: endpoints and optional TLS files.
package etcdconn

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vxland/vxland/config"
)

// DialTimeout bounds the first connection: a daemon that cannot reach etcd
// at start says so rather than wait forever.
const DialTimeout = 5 * time.Second

// KeepAlive is the interval of gRPC keepalive pings to etcd, and how long
// one may go unanswered.
const KeepAlive = 2 * time.Second

// New returns a client of the etcd cluster e describes, with TLS when a CA
// or a client certificate is given. The client connects lazily; the
// first request fails after DialTimeout when no endpoint answers.
func New(e config.Etcd) (*clientv3.Client, error) {
	// The client's own zap logger would print JSON warnings on every retry;
	// the daemon reports what matters in its own words.
	// Keepalive pings notice a connection that died silently (an etcd host
	// gone, a partition) within KeepAlive*2, so watches move to another
	// endpoint or re-list when it returns.
	c := clientv3.Config{Endpoints: e.Endpoints, DialTimeout: DialTimeout, Logger: zap.NewNop(),
		DialKeepAliveTime: KeepAlive, DialKeepAliveTimeout: KeepAlive}
	if e.CAFile != "" || e.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if e.CAFile != "" {
			pem, err := os.ReadFile(e.CAFile)
			if err != nil {
				return nil, fmt.Errorf("etcd: CA file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("etcd: CA file %s: no PEM certificate in it", e.CAFile)
			}
		}
		if e.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(e.CertFile, e.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("etcd: client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		c.TLS = tc
	}
	cli, err := clientv3.New(c)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return cli, nil
}
