package config

import (
	"fmt"
	"time"
)

// Cluster defaults.
const (
	// DefaultClusterPrefix is the etcd key prefix of cluster mode.
	DefaultClusterPrefix = "/vxland"
	// DefaultLeaseTTL is the lifetime of a node's etcd lease.
	DefaultLeaseTTL = 10 * time.Second
)

// Cluster is cluster mode's settings (the [cluster] table); the etcd
// connection is the [etcd] table's. With etcd endpoints set and flannel
// mode off, every VNI with neither remotes nor a group joins the cluster:
// it announces its VTEP and local endpoints in etcd and installs the other
// members' (docs/cluster.md).
type Cluster struct {
	// LeaseTTL is the lifetime of the node's lease: a node that dies
	// without revoking it leaves the others this long after. 0 means
	// DefaultLeaseTTL (FillDefaults).
	LeaseTTL time.Duration
	// MembersOnly drops datagrams of a cluster VNI whose underlay source
	// is not a member of it (rx_not_member).
	MembersOnly bool
}

// NewCluster returns the [cluster] table's defaults.
func NewCluster() Cluster {
	return Cluster{LeaseTTL: DefaultLeaseTTL, MembersOnly: true}
}

// ClusterMode reports whether the daemon runs in cluster mode: etcd
// endpoints set, flannel mode off.
func (c *Config) ClusterMode() bool {
	return len(c.Etcd.Endpoints) > 0 && !c.Flannel.Enable
}

// InCluster reports whether v joins the cluster: cluster mode, and v has
// neither remotes nor a group.
func (c *Config) InCluster(v *VNI) bool {
	return c.ClusterMode() && len(v.Remotes) == 0 && !v.Group.IsValid()
}

// clusterDefaults fills in cluster mode's defaults: the key prefix, the
// lease TTL, and learning off in VNIs that join the cluster unless they set
// it (the members' entries come from etcd).
func (c *Config) clusterDefaults() {
	if !c.ClusterMode() {
		return
	}
	if c.Etcd.Prefix == "" {
		c.Etcd.Prefix = DefaultClusterPrefix
	}
	if c.Cluster.LeaseTTL == 0 {
		c.Cluster.LeaseTTL = DefaultLeaseTTL
	}
	for i := range c.VNIs {
		if v := &c.VNIs[i]; c.InCluster(v) && !v.LearningSet {
			v.Learning = false
		}
	}
}

// checkCluster validates the [cluster] table and the VNIs that join: the
// others send to a VNI's local address, which must therefore be a
// specific one.
func (c *Config) checkCluster(l *errList) {
	if c.Cluster.LeaseTTL < 0 || (c.Cluster.LeaseTTL > 0 && c.Cluster.LeaseTTL < time.Second) {
		l.addf("cluster", 0, "lease_ttl", "lease_ttl %v: must be at least 1 second", c.Cluster.LeaseTTL)
	}
	for i := range c.VNIs {
		v := &c.VNIs[i]
		if c.InCluster(v) && (!v.Local.IsValid() || v.Local.IsUnspecified()) {
			l.add(entryWhere(v.ID, i), i+1, "local", fmt.Errorf("local: a VNI in the cluster needs its underlay address (the other members send to it)"))
		}
	}
}
