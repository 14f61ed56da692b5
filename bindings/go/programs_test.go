package shmrepl

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// build compiles one of the module's programs with the go command that runs the tests.
func build(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func TestExampleHello(t *testing.T) {
	bin := build(t, "./examples/hello")
	cmd := exec.Command(bin, "import sys\nfor i in range(3): print(i)\nsys.stderr.write('end\\n')")
	cmd.Env = append(os.Environ(), "SHMREPL_SOCKET="+filepath.Join(testDir, "engine.sock"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if string(out) != "0\n1\n2\nend\n" {
		t.Fatalf("output %q", out)
	}
}

func TestBenchReader(t *testing.T) {
	bin := build(t, "./cmd/bench-reader")
	s := newSession(t)
	// A finished ring: this reader holds every record, so the benchmark reader
	// starts at seq 0 too.
	x, rd := execute(t, s, ExecuteOptions{Code: "for i in range(3000): print(i)\n", Script: true})
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
			bytes += len(buf[i].Data())
		}
		records += n
	}
	// Another process: it gets the sealed ring from the test engine (OpenRing).
	cmd := exec.Command(bin, x.RingName())
	cmd.Env = append(os.Environ(), "SHMREPL_SOCKET="+filepath.Join(testDir, "engine.sock"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var gotRecords, gotBytes int
	var seconds float64
	if _, err := fmt.Sscanf(string(out), "records=%d bytes=%d seconds=%g\n", &gotRecords, &gotBytes, &seconds); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if gotRecords != records || gotBytes != bytes || seconds <= 0 || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("output %q, want records=%d bytes=%d", out, records, bytes)
	}
	if out, err := exec.Command(bin, "bad/name").CombinedOutput(); err == nil || !strings.Contains(string(out), "E_INVALID") {
		t.Fatalf("a bad ring: %v %q", err, out)
	}
}
