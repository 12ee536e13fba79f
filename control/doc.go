// Package control is vxland's control protocol: a server that the daemon runs
// on a unix stream socket, and the client that vxlanctl uses to add, append,
// replace, delete and show forwarding database entries and neighbour
// entries, to read counters and to follow events.
//
// # Socket
//
// A daemon serving the TAP device X listens on SocketPath("X"),
// /run/vxland/X.sock (the environment variable VXLAND_RUNDIR replaces
// /run/vxland). The socket is created with mode 0600: only its owner (root,
// normally) may talk to the daemon. One socket may serve several devices;
// requests name the device they are for.
//
// # Wire format
//
// A client writes one JSON object on one line (terminated by '\n', at most
// MaxRequestSize bytes) and the server answers with one JSON object on one
// line. A connection may carry several requests in turn; each gets exactly one
// reply, in order. Every message carries the protocol version, "v": 1.
//
// Requests:
//
//	{"v":1,"op":"fdb.add","dev":"vxl0","mac":"00:11:22:33:44:55","dst":"192.0.2.2","port":4789,"vni":42,"state":"permanent"}
//	{"v":1,"op":"fdb.append", ...same fields as fdb.add}
//	{"v":1,"op":"fdb.replace", ...same fields as fdb.add}
//	{"v":1,"op":"fdb.del","dev":"vxl0","mac":"00:11:22:33:44:55","dst":"192.0.2.2"}
//	{"v":1,"op":"fdb.show","dev":"vxl0"}
//	{"v":1,"op":"stats","dev":"vxl0"}
//	{"v":1,"op":"devs"}
//	{"v":1,"op":"neigh.add","dev":"vxl0","ip":"203.0.113.2","lladdr":"02:00:5e:10:00:02","router":true}
//	{"v":1,"op":"neigh.replace", ...same fields as neigh.add}
//	{"v":1,"op":"neigh.del","dev":"vxl0","ip":"203.0.113.2"}
//	{"v":1,"op":"neigh.show","dev":"vxl0"}
//	{"v":1,"op":"monitor","dev":"vxl0"}
//
// "dev" is required for the fdb.add, fdb.append, fdb.replace and fdb.del
// operations; fdb.show, stats and devs without it cover every device on the
// socket. "mac" is six hex octets separated by ':' or '-'. "dst" is the
// remote VTEP's IPv4 or IPv6 address: required for add, append and replace;
// in fdb.del it selects one destination, and without it the whole entry goes.
// "port" (0 or absent: the device's destination port) and "vni" (absent: the
// device's VNI) complete the destination, as the kernel fills NDA_PORT and
// NDA_VNI from the device when bridge(8) leaves them out. "state" is
// "permanent" (the default, as with bridge fdb add), "static" or "dynamic";
// fdb.del ignores it. "router" sets the entry's router flag (bridge fdb's
// "router"). The neigh operations manage the neighbour entries vxland keeps
// beside the host's (neigh.show lists both, "source" telling them apart).
// Unknown fields are refused.
//
// monitor is answered like any request; after an "ok" reply the connection
// carries one MonitorEvent per line, from the device named (every device on
// the socket without "dev"), until either side closes it:
//
//	{"event":"l3miss","dev":"vxl0","vni":42,"port":4789,"ip":"203.0.113.99"}
//	{"event":"fdb","dev":"vxl0","vni":42,"port":4789,"mac":"02:00:5e:10:00:02","action":"learned","dst":{"ip":"192.0.2.2","port":4789,"vni":42},"state":"dynamic"}
//	{"event":"lost","dev":"vxl0","vni":42,"port":4789,"lost":12}
//
// Replies:
//
//	{"v":1,"ok":true}
//	{"v":1,"ok":false,"code":"exists","error":"fdb add 00:11:22:33:44:55 dev vxl0 dst 192.0.2.2: entry exists"}
//	{"v":1,"ok":true,"devs":[{"name":"vxl0","vni":42,"port":4789,"fdb":[
//	    {"mac":"00:00:00:00:00:00","state":"permanent","updated":"2025-01-02T15:04:05Z",
//	     "dsts":[{"ip":"192.0.2.2","port":4789,"vni":42},{"ip":"192.0.2.3","port":4789,"vni":42}]}]}]}
//	{"v":1,"ok":true,"devs":[{"name":"vxl0","vni":42,"port":4789,"stats":[{"name":"rx_packets","value":7}]}]}
//
// fdb.show lists entries in MAC order and gives every destination fully
// resolved; "devs" lists the devices (name, vni, port) without fdb or stats.
// A refused request gets "ok":false, a human-readable "error" and one of the
// Code* values in "code"; nothing was changed.
package control
