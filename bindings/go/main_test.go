package shmrepl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The tests share one engine on a private socket, started here and shut down
// at the end. The engine comes from $SHMREPL_ENGINE (else the library's default,
// next to libshmrepl).
var (
	testClient *Client
	testDir    string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "shmrepl-go-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testDir = dir
	c, err := Connect(testOptions(filepath.Join(dir, "engine.sock")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot start the test engine:", err)
		return 1
	}
	testClient = c
	code := m.Run()
	if err := c.Shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "engine shutdown:", err)
		code = 1
	}
	c.Close()
	return code
}

func testOptions(socket string) Options {
	return Options{SocketPath: socket, EnginePath: os.Getenv("SHMREPL_ENGINE"),
		Autostart: AutostartOn, ConnectTimeout: 20 * time.Second}
}

// rec is a record with its views copied out of the ring.
type rec struct {
	Record
	data string
	raw  int
}

// readAll reads rd to its end with NextBatch and returns every record copied,
// and the error that ended it (nil for EOF).
func readAll(t *testing.T, rd *Reader, timeout time.Duration) ([]rec, error) {
	t.Helper()
	buf := make([]Record, 64)
	var out []rec
	deadline := time.Now().Add(timeout)
	for {
		n, err := rd.NextBatch(buf, time.Until(deadline))
		if err != nil {
			if isEOF(err) {
				return out, nil
			}
			return out, err
		}
		for i := range buf[:n] {
			out = append(out, rec{buf[i], string(buf[i].Data()), len(buf[i].Raw())})
		}
		if err := rd.Release(n); err != nil {
			t.Fatalf("release %d: %v", n, err)
		}
	}
}

// run executes o in a fresh session and returns its records (read to EOF).
func run(t *testing.T, o ExecuteOptions) (*Execution, []rec) {
	t.Helper()
	s, err := testClient.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x, err := s.Execute(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	rd, err := x.Reader(StartOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	recs, err := readAll(t, rd, 60*time.Second)
	if err != nil {
		t.Fatalf("reading %q: %v", o.Code, err)
	}
	return x, recs
}

func kinds(recs []rec) string {
	k := make([]string, len(recs))
	for i, r := range recs {
		k[i] = r.Kind.String()
	}
	return strings.Join(k, ",")
}

func streamText(recs []rec, s Stream) string {
	var b strings.Builder
	for _, r := range recs {
		if r.Kind == KindOutput && r.Stream == s {
			b.WriteString(r.data)
		}
	}
	return b.String()
}
