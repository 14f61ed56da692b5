package shmrepl

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A client opening sessions without end gets ErrLimit at its limit (an engine of
// its own, started with SHMREPL_MAX_CLIENT_SESSIONS=2 from our environment).
func TestSessionHogGetsLimit(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SHMREPL_MAX_CLIENT_SESSIONS", "2")
	c, err := Connect(testOptions(filepath.Join(dir, "engine.sock")))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Shutdown(); err != nil {
			t.Error(err)
		}
		c.Close()
	}()
	var sessions []*Session
	for i := 0; i < 2; i++ {
		s, err := c.OpenSession()
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
	}
	_, err = c.OpenSession()
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("third session: %v, want ErrLimit", err)
	}
	if !strings.Contains(err.Error(), "--max-client-sessions") {
		t.Errorf("the error does not name the limit: %v", err)
	}
	if StatusLimit.String() != "E_LIMIT" || int32(StatusLimit) != -19 {
		t.Errorf("StatusLimit is %v (%d)", StatusLimit, int32(StatusLimit))
	}
	sessions[0].Close()
	s, err := c.OpenSession() // room again
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	sessions[1].Close()
}

// An engine that answers Hello and then nothing: RequestTimeout ends the wait with
// ErrTimeout, and the connection is unusable after (ErrState).
func TestRequestTimeout(t *testing.T) {
	silent := os.Getenv("SHMREPL_TEST_SILENT_ENGINE")
	if silent == "" {
		t.Skip("needs $SHMREPL_TEST_SILENT_ENGINE")
	}
	sock := filepath.Join(t.TempDir(), "silent.sock")
	peer := exec.Command(silent, sock)
	if err := peer.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		peer.Process.Kill()
		peer.Wait()
	}()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
	}
	c, err := Connect(Options{SocketPath: sock, Autostart: AutostartOff, RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t0 := time.Now()
	if _, err := c.OpenSession(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("OpenSession: %v, want ErrTimeout", err)
	}
	if took := time.Since(t0); took < 250*time.Millisecond || took > 5*time.Second {
		t.Errorf("timed out after %v, want about 300 ms", took)
	}
	if _, err := c.OpenSession(); !errors.Is(err, ErrState) {
		t.Fatalf("after a timeout: %v, want ErrState", err)
	}
}
