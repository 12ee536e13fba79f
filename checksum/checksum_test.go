package checksum

import (
	"math/rand/v2"
	"testing"
)

// naive is the textbook RFC 1071 loop: 16-bit big-endian words, a trailing odd
// byte padded with zero, end-around carry folded after every addition.
func naive(b []byte, initial uint16) uint16 {
	s := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
		s = (s & 0xffff) + (s >> 16)
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
		s = (s & 0xffff) + (s >> 16)
	}
	return uint16(s)
}

// equivalent reports whether two folded sums are the same ones'-complement
// number (0x0000 and 0xffff are both zero).
func equivalent(a, b uint16) bool {
	if a == 0xffff {
		a = 0
	}
	if b == 0xffff {
		b = 0
	}
	return a == b
}

func TestSumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 70000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	ones := make([]byte, 70000)
	for i := range ones {
		ones[i] = 0xff
	}
	lengths := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 1499, 1500, 1501, 9000, 65535, 65536}
	for _, data := range [][]byte{buf, ones} {
		for _, n := range lengths {
			for off := 0; off < 9; off++ {
				b := data[off : off+n]
				want := naive(b, 0)
				got := Fold(Sum(b, 0))
				if !equivalent(got, want) {
					t.Fatalf("len %d off %d: Fold(Sum)=%#04x, naive=%#04x", n, off, got, want)
				}
			}
		}
	}
}

func TestSumRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 4096)
	for range 3000 {
		n := r.IntN(len(buf))
		off := r.IntN(len(buf) - n + 1)
		for i := off; i < off+n; i++ {
			if r.IntN(4) == 0 {
				buf[i] = 0xff
			} else {
				buf[i] = byte(r.Uint32())
			}
		}
		init16 := uint16(r.Uint32())
		b := buf[off : off+n]
		want := naive(b, init16)
		got := Fold(Sum(b, uint64(init16)))
		if !equivalent(got, want) {
			t.Fatalf("len %d off %d init %#x: got %#04x want %#04x", n, off, init16, got, want)
		}
	}
}

func TestSumLargeInitial(t *testing.T) {
	// An accumulator close to 2^64 must not lose carries.
	b := make([]byte, 1000)
	for i := range b {
		b[i] = 0xff
	}
	for _, init := range []uint64{1<<64 - 1, 1<<64 - 2, 1 << 63, 0xffff_0000_ffff_0000} {
		want := naive(b, Fold(init))
		got := Fold(Sum(b, init))
		if !equivalent(got, want) {
			t.Fatalf("init %#x: got %#04x want %#04x", init, got, want)
		}
	}
}

func TestSumChaining(t *testing.T) {
	b := make([]byte, 301)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	whole := Fold(Sum(b, 0))
	for split := 0; split <= len(b); split += 2 {
		got := Fold(Sum(b[split:], Sum(b[:split], 0)))
		if got != whole {
			t.Fatalf("split %d: %#04x != %#04x", split, got, whole)
		}
	}
}

func TestFold(t *testing.T) {
	cases := []struct {
		in   uint64
		want uint16
	}{
		{0, 0},
		{0xffff, 0xffff},
		{0x10000, 1},
		{0x1fffe, 0xffff},
		{1<<64 - 1, 0xffff},
		{0x0001_0002_0003_0004, 10},
	}
	for _, c := range cases {
		if got := Fold(c.in); got != c.want {
			t.Errorf("Fold(%#x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
}

func TestPseudo(t *testing.T) {
	src4 := []byte{192, 0, 2, 1}
	dst4 := []byte{198, 51, 100, 200}
	ph := append(append(append([]byte{}, src4...), dst4...), 0, 6, 0x05, 0xdc)
	if got, want := Fold(PseudoV4(src4, dst4, 6, 1500)), naive(ph, 0); !equivalent(got, want) {
		t.Fatalf("PseudoV4: %#04x want %#04x", got, want)
	}
	src6 := []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 1}
	dst6 := []byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0, 2}
	ph6 := append(append(append([]byte{}, src6...), dst6...), 0, 1, 0x23, 0x45, 0, 0, 0, 17)
	if got, want := Fold(PseudoV6(src6, dst6, 17, 0x12345)), naive(ph6, 0); !equivalent(got, want) {
		t.Fatalf("PseudoV6: %#04x want %#04x", got, want)
	}
}

func benchmarkSum(b *testing.B, n int) {
	buf := make([]byte, n+1)
	for i := range buf {
		buf[i] = byte(i)
	}
	data := buf[:n]
	b.SetBytes(int64(n))
	b.ReportAllocs()
	var s uint64
	for b.Loop() {
		s = Sum(data, s)
	}
	_ = Fold(s)
}

func BenchmarkSum(b *testing.B) {
	b.Run("1500", func(b *testing.B) { benchmarkSum(b, 1500) })
	b.Run("64K", func(b *testing.B) { benchmarkSum(b, 65536) })
}

func BenchmarkSumNaive1500(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(1500)
	b.ReportAllocs()
	for b.Loop() {
		_ = naive(buf, 0)
	}
}
