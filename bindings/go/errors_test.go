package shmrepl

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A closed reader answers with the binding's own error: the C handle is gone.
func TestClosedReader(t *testing.T) {
	s := newSession(t)
	_, rd := execute(t, s, ExecuteOptions{Code: "print('x')\n"})
	if _, err := rd.Next(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := rd.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rd.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	buf := make([]Record, 4)
	_, errNext := rd.Next(0)
	_, errBatch := rd.NextBatch(buf, 0)
	_, _, errMap := rd.Mapping()
	_, errID := rd.ExecutionID()
	_, errOut := io.ReadAll(rd.Output())
	for _, err := range []error{errNext, errBatch, errMap, errID, rd.Release(1), errOut} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("got %v, want ErrClosed", err)
		}
		var e *Error
		if errors.As(err, &e) {
			t.Errorf("closed reader reached the library: %v", err)
		}
	}
	if rd.Held() != 0 {
		t.Error("a closed reader holds records")
	}
}

func TestUnknownRing(t *testing.T) {
	// A real ring name whose ring is gone: finished, read and released.
	s := newSession(t)
	x, err := s.Execute(ExecuteOptions{Code: "pass\n"})
	if err != nil {
		t.Fatal(err)
	}
	name := x.RingName()
	rd, err := x.Reader(StartOldest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, rd, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	rd.Close()
	x.Close()
	if err := x.Close(); err != nil {
		t.Fatalf("second execution close: %v", err)
	}
	if _, err := x.Reader(StartOldest); !errors.Is(err, ErrClosed) {
		t.Errorf("reader of a closed execution: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rd, err := OpenReader(name, StartOldest)
		if err == nil {
			rd.Close()
			if time.Now().After(deadline) {
				t.Fatalf("ring %s still exists after its execution was released", name)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var e *Error
		if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Status != StatusNotFound {
			t.Fatalf("open gone ring %s: %v, want E_NOT_FOUND", name, err)
		}
		t.Logf("%v", err)
		break
	}
	for _, bad := range []string{"", "bad/name", strings.Repeat("x", 5000)} {
		if _, err := OpenReader(bad, StartOldest); !errors.Is(err, ErrInvalid) {
			t.Errorf("open %.20q: %v, want E_INVALID", bad, err)
		}
	}
}

// Nothing yet: E_AGAIN at timeout 0, E_TIMEOUT after a timeout; then Cancel
// ends the execution as CANCELLED.
func TestTimeoutAgainCancel(t *testing.T) {
	s := newSession(t)
	x, rd := execute(t, s, ExecuteOptions{Code: "import time\nprint('start', flush=True)\ntime.sleep(60)\nprint('not reached')\n"})
	var got []Record
	for len(got) < 2 {
		r, err := rd.Next(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if got[0].Kind != KindStarted || got[1].Kind != KindOutput || string(got[1].Data()) != "start\n" {
		t.Fatalf("first records %s %s %q", got[0].Kind, got[1].Kind, got[1].Data())
	}
	if err := rd.Release(2); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Next(0); !errors.Is(err, ErrAgain) {
		t.Fatalf("Next(0): %v, want E_AGAIN", err)
	}
	if _, err := rd.NextBatch(make([]Record, 8), 0); !errors.Is(err, ErrAgain) {
		t.Fatalf("NextBatch(0): %v, want E_AGAIN", err)
	}
	t0 := time.Now()
	if _, err := rd.Next(100 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Next(100ms): %v, want E_TIMEOUT", err)
	}
	if d := time.Since(t0); d < 90*time.Millisecond || d > 10*time.Second {
		t.Errorf("a 100 ms timeout took %v", d)
	}
	// Cancel from another goroutine while this one waits.
	go func() {
		time.Sleep(50 * time.Millisecond)
		if err := x.Cancel(); err != nil {
			t.Errorf("cancel: %v", err)
		}
	}()
	rest, err := readAll(t, rd, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) == 0 {
		t.Fatal("no records after cancel")
	}
	last := rest[len(rest)-1]
	if last.Kind != KindFinished || last.FinishStatus != FinishCancelled {
		t.Fatalf("last record %s %s, want FINISHED CANCELLED (%s)", last.Kind, last.FinishStatus, kinds(rest))
	}
	if strings.Contains(streamText(rest, StreamStdout), "not reached") {
		t.Error("the cancelled execution went on")
	}
	if err := x.Cancel(); err != nil {
		t.Errorf("cancel after the end: %v", err)
	}
}

func TestNoEngine(t *testing.T) {
	o := testOptions(filepath.Join(t.TempDir(), "none.sock"))
	o.Autostart = AutostartOff
	c, err := Connect(o)
	if err == nil {
		c.Close()
		t.Fatal("connected without an engine")
	}
	if !errors.Is(err, ErrConnect) {
		t.Fatalf("got %v, want E_CONNECT", err)
	}
	t.Logf("%v", err)
}

func TestClosedClient(t *testing.T) {
	c, err := Connect(testOptions(filepath.Join(testDir, "engine.sock")))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	x, err := s.Execute(ExecuteOptions{Code: "pass\n"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrNotFound) {
		t.Errorf("second session close: %v, want E_NOT_FOUND", err)
	}
	c.Close()
	c.Close()
	if _, err := c.OpenSession(); !errors.Is(err, ErrClosed) {
		t.Errorf("open session on a closed client: %v", err)
	}
	if err := x.Cancel(); !errors.Is(err, ErrClosed) {
		t.Errorf("cancel on a closed client: %v", err)
	}
	if err := x.Close(); err != nil {
		t.Errorf("execution close after its client: %v", err)
	}
	if s.BackgroundRing() != "" {
		t.Error("background ring of a closed client")
	}
}

// A dead engine: the reader gets every record it wrote, then E_PRODUCER_DIED;
// the client E_ENGINE_DIED, the session's execution E_SESSION_DIED.
func TestDeadEngine(t *testing.T) {
	c, err := Connect(testOptions(filepath.Join(t.TempDir(), "doomed.sock")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pid := c.EnginePID()
	if pid <= 0 || pid == testClient.EnginePID() {
		t.Fatalf("engine pid %d", pid)
	}
	s, err := c.OpenSession()
	if err != nil {
		t.Fatal(err)
	}
	rings := []string{}
	if bg := s.BackgroundRing(); bg != "" {
		rings = append(rings, bg)
	}
	x, err := s.Execute(ExecuteOptions{Code: "import time\nfor i in range(5): print(i, flush=True)\ntime.sleep(60)\n"})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	rings = append(rings, x.RingName())
	// No one is left to unlink the rings: these are all the session had.
	defer func() {
		for _, r := range rings {
			os.Remove("/dev/shm/" + r)
		}
	}()
	rd, err := x.Reader(StartOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out strings.Builder
	for n := 0; n < 6; n++ { // STARTED and five lines
		r, err := rd.Next(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(r.Data())
		rd.Release(1)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, err = rd.Next(30 * time.Second)
	if !errors.Is(err, ErrProducerDied) {
		t.Fatalf("after SIGKILL: %v, want E_PRODUCER_DIED", err)
	}
	t.Logf("%v", err)
	if got := out.String(); !strings.HasSuffix(got, "0\n1\n2\n3\n4\n") {
		t.Errorf("records before the death: %q", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.OpenSession()
		if errors.Is(err, ErrEngineDied) {
			t.Logf("%v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client after SIGKILL: %v, want E_ENGINE_DIED", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Killing the engine kills its workers: a call on the session's execution
	// goes to its (dead) worker.
	if err := x.Cancel(); !errors.Is(err, ErrSessionDied) {
		t.Errorf("cancel after the engine died: %v, want E_SESSION_DIED", err)
	}
}
