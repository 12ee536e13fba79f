package fdb

import "fmt"

// MAC is a 48-bit Ethernet address, the key of the forwarding database.
type MAC [6]byte

// Zero is the all-zeros address. Its entry holds the default destinations:
// broadcast, multicast and unknown unicast frames go once to each of them
// (head-end replication), like the kernel's `remote` / `bridge fdb append
// 00:00:00:00:00:00` entry.
var Zero MAC

// String formats m as six lower-case hex octets separated by colons,
// "aa:bb:cc:dd:ee:ff".
func (m MAC) String() string {
	const hexDigits = "0123456789abcdef"
	var b [17]byte
	for i, v := range m {
		if i > 0 {
			b[3*i-1] = ':'
		}
		b[3*i] = hexDigits[v>>4]
		b[3*i+1] = hexDigits[v&0x0f]
	}
	return string(b[:])
}

// ParseMAC parses six two-digit hex octets separated by ':' or '-' (one
// separator throughout, either case), e.g. "02:00:5e:10:00:01" or
// "02-00-5E-10-00-01". Errors wrap ErrInvalid.
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("fdb: parse MAC %q: %w: want 17 characters (6 octets), got %d", s, ErrInvalid, len(s))
	}
	sep := s[2]
	if sep != ':' && sep != '-' {
		return m, fmt.Errorf("fdb: parse MAC %q: %w: separator %q, want ':' or '-'", s, ErrInvalid, sep)
	}
	for i := range m {
		if i > 0 && s[3*i-1] != sep {
			return m, fmt.Errorf("fdb: parse MAC %q: %w: separator %q at offset %d, want %q", s, ErrInvalid, s[3*i-1], 3*i-1, sep)
		}
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 {
			return m, fmt.Errorf("fdb: parse MAC %q: %w: bad hex octet %q at offset %d", s, ErrInvalid, s[3*i:3*i+2], 3*i)
		}
		m[i] = hi<<4 | lo
	}
	return m, nil
}

// MarshalText implements encoding.TextMarshaler (JSON strings in the control
// protocol) with the String form.
func (m MAC) MarshalText() ([]byte, error) {
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseMAC.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
