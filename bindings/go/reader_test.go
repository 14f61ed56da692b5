package shmrepl

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newSession(t *testing.T) *Session {
	t.Helper()
	s, err := testClient.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func execute(t *testing.T, s *Session, o ExecuteOptions) (*Execution, *Reader) {
	t.Helper()
	x, err := s.Execute(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	rd, err := x.Reader(StartOldest)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return x, rd
}

// mapsCovering is the /proc/self/maps lines whose ranges, end to end, hold
// [base, base+n) (the ring's header pages and its read-only data area), or nil.
func mapsCovering(t *testing.T, base uintptr, n int) []string {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	var end uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		rng := strings.SplitN(strings.Fields(line)[0], "-", 2)
		lo, err1 := strconv.ParseUint(rng[0], 16, 64)
		hi, err2 := strconv.ParseUint(rng[1], 16, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad maps line %q", line)
		}
		if lo < uint64(base)+uint64(n) && hi > uint64(base) {
			if len(lines) == 0 && lo > uint64(base) {
				return nil
			}
			if len(lines) > 0 && lo != end {
				return nil // a gap
			}
			lines = append(lines, line)
			end = hi
		}
	}
	if end < uint64(base)+uint64(n) {
		return nil
	}
	return lines
}

// Every view lies inside the reader's mapping, which is the ring's shared
// mapping in /proc/self/maps: nothing is copied.
func TestZeroCopy(t *testing.T) {
	s := newSession(t)
	x, rd := execute(t, s, ExecuteOptions{ClientExecutionID: "go-zero-copy",
		Code: "import sys\nfor i in range(2000): print('line', i)\nsys.stderr.write('e' * 100000)\n1+1\n"})
	base, length, err := rd.Mapping()
	if err != nil {
		t.Fatal(err)
	}
	if base == 0 || length <= 0 {
		t.Fatalf("mapping %#x+%d", base, length)
	}
	lines := mapsCovering(t, base, length)
	t.Logf("mapping %#x+%d: %q", base, length, lines)
	if lines == nil {
		t.Fatalf("no /proc/self/maps entries hold %#x+%d", base, length)
	}
	// The label is the name it was created with (a ring a session reuses keeps
	// it): the same random part.
	random := x.RingName()[strings.LastIndex(x.RingName(), "."):]
	for _, line := range lines {
		if f := strings.Fields(line); len(f) < 6 || f[1][3] != 's' || !strings.Contains(line, random+" (deleted)") {
			t.Errorf("the mapping is not the shared mapping of ring %s: %s", x.RingName(), line)
		}
	}
	inside := func(b []byte) bool {
		if len(b) == 0 {
			return true
		}
		p := uintptr(unsafePointer(&b[0]))
		return p >= base && p+uintptr(len(b)) <= base+uintptr(length)
	}
	buf := make([]Record, 256)
	records, bytes := 0, 0
	for {
		n, err := rd.NextBatch(buf, 30*time.Second)
		if isEOF(err) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for i := range buf[:n] {
			r := &buf[i]
			if len(r.Raw()) == 0 || !inside(r.Raw()) || !inside(r.Data()) {
				t.Fatalf("record %d: views data %p+%d raw %p+%d outside %#x+%d",
					r.Seq, r.Data(), len(r.Data()), r.Raw(), len(r.Raw()), base, length)
			}
			bytes += len(r.Data())
		}
		records += n
		if err := rd.Release(n); err != nil {
			t.Fatal(err)
		}
	}
	if records < 2003 || bytes < 100000 {
		t.Fatalf("read %d records, %d bytes", records, bytes)
	}
}
