package flannel

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// SubnetEnv is the content of subnet.env for a node holding subnet, as
// flanneld writes it (the flannel CNI plugin reads it): the network, the
// subnet's first host address with the subnet's length, the MTU of the
// flannel device and whether flannel masquerades (vxland does not).
func SubnetEnv(n *Network, subnet netip.Prefix, mtu int) []byte {
	first := netip.PrefixFrom(subnet.Addr().Next(), subnet.Bits())
	return fmt.Appendf(nil, "FLANNEL_NETWORK=%s\nFLANNEL_SUBNET=%s\nFLANNEL_MTU=%d\nFLANNEL_IPMASQ=false\n",
		n.Network, first, mtu)
}

// WriteSubnetEnv writes SubnetEnv to path atomically (a temporary file
// renamed over it), creating its directory, mode 0644 as flanneld does.
func WriteSubnetEnv(path string, n *Network, subnet netip.Prefix, mtu int) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("subnet file: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("subnet file: %w", err)
	}
	defer os.Remove(f.Name()) // after a successful rename, a no-op
	if _, err := f.Write(SubnetEnv(n, subnet, mtu)); err != nil {
		f.Close()
		return fmt.Errorf("subnet file: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("subnet file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("subnet file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("subnet file: %w", err)
	}
	return nil
}
