package testnet

import (
	"context"
	"net"
	"net/http"
	"time"
)

// DialContext dials addr from inside the namespace: the socket is created
// there (by a thread that entered it) and keeps talking from there after.
// Clients of the test process (HTTP, etcd) use it to reach servers that
// listen inside a namespace.
func (n *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.TryDo(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient returns an HTTP client whose connections are dialled from
// inside the namespace (net/http dials on goroutines of its own, which
// TryDo would leave in the root namespace), without keep-alives.
func (n *NS) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: n.DialContext},
	}
}
