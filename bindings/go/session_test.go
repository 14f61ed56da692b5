package shmrepl

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// openSessionWith opens a session with o on the shared test engine, closed at the end.
func openSessionWith(t *testing.T, o SessionOptions) *Session {
	t.Helper()
	s, err := testClient.OpenSessionWith(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// finished is the last record of recs, which must be FINISHED.
func finished(t *testing.T, recs []rec) rec {
	t.Helper()
	if len(recs) == 0 || recs[len(recs)-1].Kind != KindFinished {
		t.Fatalf("records %s do not end with FINISHED", kinds(recs))
	}
	return recs[len(recs)-1]
}

// The working folder, the whole environment and stdin of a session: the code
// sees them as python3 would see its own.
func TestSessionOptions(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "here.txt"), []byte("in the folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	env := []string{"X=x value é =", "SHMREPL_GO_TEST=1", "EMPTY="}
	s := openSessionWith(t, SessionOptions{WorkingDir: dir, Env: env, Stdin: pr})
	// The worker has its own descriptor: ours may go at once.
	if err := pr.Close(); err != nil {
		t.Fatal(err)
	}
	x, rd := execute(t, s, ExecuteOptions{Code: "import os, sys, json\n" +
		"print(os.getcwd())\nprint(os.environ['X'])\nprint(open('here.txt').read())\n" +
		"print(json.dumps(sorted(os.environ.items())))\nprint('reading', flush=True)\n" +
		"data = sys.stdin.read()\nprint(repr(data))\nprint(sys.stdin.read() == '')\n"})
	// stdin is live and blocking: written while the code waits in read().
	var recs []rec
	for !strings.Contains(streamText(recs, StreamStdout), "reading\n") {
		r, err := rd.Next(30 * time.Second)
		if err != nil {
			t.Fatalf("%v; stdout %q stderr %q", err, streamText(recs, StreamStdout), streamText(recs, StreamStderr))
		}
		recs = append(recs, rec{r, string(r.Data()), len(r.Raw())})
		rd.Release(1)
	}
	const input = "line 1\nline 2 ü\nno newline"
	for _, part := range []string{input[:9], input[9:]} {
		time.Sleep(50 * time.Millisecond)
		if _, err := pw.WriteString(part); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	rest, err := readAll(t, rd, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, rest...)
	if f := finished(t, recs); f.FinishStatus != FinishOK || f.ExitCode != 0 || f.Signal() != 0 {
		t.Fatalf("FINISHED %s exit %d signal %d; stderr %q", f.FinishStatus, f.ExitCode, f.Signal(),
			streamText(recs, StreamStderr))
	}
	lines := strings.Split(streamText(recs, StreamStdout), "\n")
	if len(lines) != 8 || lines[4] != "reading" || lines[7] != "" {
		t.Fatalf("stdout lines %q", lines)
	}
	if lines[0] != dir {
		t.Errorf("os.getcwd() %q, want %q", lines[0], dir)
	}
	if lines[1] != "x value é =" {
		t.Errorf("os.environ['X'] %q", lines[1])
	}
	if lines[2] != "in the folder" {
		t.Errorf("a relative open read %q", lines[2])
	}
	var items [][2]string
	if err := json.Unmarshal([]byte(lines[3]), &items); err != nil {
		t.Fatalf("environment %q: %v", lines[3], err)
	}
	want := [][2]string{{"EMPTY", ""}, {"SHMREPL_GO_TEST", "1"}, {"X", "x value é ="}}
	if len(items) != len(want) {
		t.Errorf("os.environ %q, want exactly %q", items, want)
	} else {
		for i := range want {
			if items[i] != want[i] {
				t.Errorf("os.environ %q, want exactly %q", items, want)
				break
			}
		}
	}
	if wantRepr := "'line 1\\nline 2 ü\\nno newline'"; lines[5] != wantRepr {
		t.Errorf("sys.stdin.read() %s, want %s", lines[5], wantRepr)
	}
	if lines[6] != "True" {
		t.Errorf("stdin after its end: %q", lines[6])
	}
	if x.ID() == 0 {
		t.Error("execution id 0")
	}
}

// An empty non-nil Env is an empty environment; no Stdin is /dev/null.
func TestSessionEmptyEnvNoStdin(t *testing.T) {
	s := openSessionWith(t, SessionOptions{Env: []string{}})
	_, rd := execute(t, s, ExecuteOptions{Code: "import os, sys\nprint(dict(os.environ), repr(sys.stdin.read()))\n"})
	recs, err := readAll(t, rd, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := streamText(recs, StreamStdout); got != "{} ''\n" {
		t.Errorf("stdout %q, want %q (stderr %q)", got, "{} ''\n", streamText(recs, StreamStderr))
	}
	// nil Env: the engine's environment, which is not empty.
	s2 := openSessionWith(t, SessionOptions{})
	_, rd2 := execute(t, s2, ExecuteOptions{Code: "import os\nprint(len(os.environ) > 0)\n"})
	if recs, err = readAll(t, rd2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := streamText(recs, StreamStdout); got != "True\n" {
		t.Errorf("engine environment: stdout %q", got)
	}
}

func TestSessionOptionsErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := testClient.OpenSessionWith(SessionOptions{WorkingDir: missing}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a missing working folder: %v, want E_NOT_FOUND", err)
	} else {
		t.Logf("%v", err)
	}
	for _, o := range []SessionOptions{{WorkingDir: "/tmp\x00x"}, {Env: []string{"A=1", "B=\x00"}}} {
		if _, err := testClient.OpenSessionWith(o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want E_INVALID", o, err)
		}
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	pw.Close()
	if _, err := testClient.OpenSessionWith(SessionOptions{Stdin: pr}); !errors.Is(err, ErrInvalid) {
		t.Errorf("a closed stdin: %v, want E_INVALID", err)
	}
	// The engine serves on after refusals.
	_, recs := run(t, ExecuteOptions{Code: "print('alive')\n"})
	if got := streamText(recs, StreamStdout); got != "alive\n" {
		t.Errorf("after the refusals: %q", got)
	}
}

// diedSession checks what a session whose worker died answers: Execute and
// Cancel give E_SESSION_DIED; other sessions of the client work on.
func diedSession(t *testing.T, s *Session, x *Execution) {
	t.Helper()
	if _, err := s.Execute(ExecuteOptions{Code: "print('never')\n"}); !errors.Is(err, ErrSessionDied) {
		t.Errorf("execute after the worker died: %v, want E_SESSION_DIED", err)
	} else {
		t.Logf("%v", err)
	}
	if err := x.Cancel(); !errors.Is(err, ErrSessionDied) {
		t.Errorf("cancel after the worker died: %v, want E_SESSION_DIED", err)
	}
	_, recs := run(t, ExecuteOptions{Code: "print('other session')\n"})
	if got := streamText(recs, StreamStdout); got != "other session\n" {
		t.Errorf("another session after a worker died: %q", got)
	}
}

// A segfault in user code ends its session's worker only: FINISHED ABORTED
// with signal 11 (on the session's background ring too).
func TestWorkerCrash(t *testing.T) {
	s := newSession(t)
	bgName := s.BackgroundRing()
	if bgName == "" {
		t.Fatal("no background ring")
	}
	bg, err := OpenReader(bgName, StartOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer bg.Close()
	x, rd := execute(t, s, ExecuteOptions{Code: "import ctypes\nprint('before', flush=True)\nctypes.string_at(0)\nprint('after')\n"})
	recs, err := readAll(t, rd, 30*time.Second)
	if err != nil {
		t.Fatalf("%v (records %s)", err, kinds(recs))
	}
	f := finished(t, recs)
	if f.FinishStatus != FinishAborted || f.Signal() != int(syscall.SIGSEGV) || f.ExitCode != 0 {
		t.Errorf("FINISHED %s exit %d signal %d, want ABORTED exit 0 signal 11", f.FinishStatus, f.ExitCode, f.Signal())
	}
	if f.ExecutionID != x.ID() {
		t.Errorf("FINISHED of execution %d, want %d", f.ExecutionID, x.ID())
	}
	for i, r := range recs {
		if r.Seq != uint64(i) {
			t.Fatalf("record %d has seq %d (%s)", i, r.Seq, kinds(recs))
		}
	}
	if got := streamText(recs, StreamStdout); got != "before\n" {
		t.Errorf("stdout %q", got)
	}
	bgRecs, err := readAll(t, bg, 30*time.Second)
	if err != nil {
		t.Fatalf("background ring: %v", err)
	}
	if f := finished(t, bgRecs); f.FinishStatus != FinishAborted || f.Signal() != int(syscall.SIGSEGV) {
		t.Errorf("background ring FINISHED %s signal %d", f.FinishStatus, f.Signal())
	}
	diedSession(t, s, x)
}

// os._exit(n) ends the worker as it ends python3: no finally, FINISHED
// ABORTED with exit code n and no signal.
func TestOsExit(t *testing.T) {
	s := newSession(t)
	x, recs := func() (*Execution, []rec) {
		x, rd := execute(t, s, ExecuteOptions{Code: "import os\nprint('a')\ntry:\n    os._exit(7)\nfinally:\n    print('finally')\n"})
		recs, err := readAll(t, rd, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return x, recs
	}()
	f := finished(t, recs)
	if f.FinishStatus != FinishAborted || f.ExitCode != 7 || f.Signal() != 0 {
		t.Errorf("FINISHED %s exit %d signal %d, want ABORTED exit 7 signal 0", f.FinishStatus, f.ExitCode, f.Signal())
	}
	if got := streamText(recs, StreamStdout); got != "a\n" {
		t.Errorf("stdout %q, want %q", got, "a\n")
	}
	diedSession(t, s, x)
}

// A worker killed from outside: FINISHED ABORTED, signal 9.
func TestWorkerKilled(t *testing.T) {
	s := newSession(t)
	x, rd := execute(t, s, ExecuteOptions{Code: "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(60)\n"})
	var pid int
	for pid == 0 {
		r, err := rd.Next(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == KindOutput {
			if pid, err = strconv.Atoi(strings.TrimSpace(string(r.Data()))); err != nil || pid <= 0 {
				t.Fatalf("pid %q", r.Data())
			}
		}
		rd.Release(1)
	}
	if pid == os.Getpid() || pid == testClient.EnginePID() {
		t.Fatalf("the code runs in pid %d, not in a worker of its own", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	recs, err := readAll(t, rd, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if f := finished(t, recs); f.FinishStatus != FinishAborted || f.Signal() != int(syscall.SIGKILL) || f.ExitCode != 0 {
		t.Errorf("FINISHED %s exit %d signal %d, want ABORTED exit 0 signal 9", f.FinishStatus, f.ExitCode, f.Signal())
	}
	diedSession(t, s, x)
}

// Code that swallows KeyboardInterrupt: the worker kills itself after the
// cancel's grace period (3 s): FINISHED CANCELLED, signal 9, and the session is gone.
func TestCancelKillsStubbornCode(t *testing.T) {
	s := newSession(t)
	x, rd := execute(t, s, ExecuteOptions{Code: "import time\nprint('go', flush=True)\n" +
		"while True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass\n"})
	r, err := rd.Next(30 * time.Second)
	for err == nil && r.Kind != KindOutput {
		rd.Release(1)
		r, err = rd.Next(30 * time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	rd.Release(1)
	t0 := time.Now()
	if err := x.Cancel(); err != nil {
		t.Fatal(err)
	}
	recs, err := readAll(t, rd, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 2*time.Second {
		t.Errorf("the grace period lasted %v", d)
	}
	if f := finished(t, recs); f.FinishStatus != FinishCancelled || f.Signal() != int(syscall.SIGKILL) {
		t.Errorf("FINISHED %s exit %d signal %d, want CANCELLED signal 9", f.FinishStatus, f.ExitCode, f.Signal())
	}
	diedSession(t, s, x)
}

// A session without Stdin: input() sends an INPUT_REQUEST that SendInput answers.
func TestInputRequestAndSendInput(t *testing.T) {
	s := openSessionWith(t, SessionOptions{})
	x, rd := execute(t, s, ExecuteOptions{Code: "import getpass\nname = input('who? ')\n" +
		"print('hi', name)\nprint(len(getpass.getpass()))\n"})
	buf := make([]Record, 16)
	var out strings.Builder
	var prompts []string
	deadline := time.Now().Add(60 * time.Second)
	for done := false; !done; {
		n, err := rd.NextBatch(buf, time.Until(deadline))
		if err != nil {
			t.Fatalf("read: %v (prompts %q, out %q)", err, prompts, out.String())
		}
		for i := range buf[:n] {
			r := &buf[i]
			switch r.Kind {
			case KindOutput:
				out.Write(r.Data())
			case KindInputRequest:
				prompts = append(prompts, string(r.Data())+"|"+strconv.FormatBool(r.Password()))
				answer := "X\n"
				if len(prompts) == 2 {
					answer = "secret"
				}
				if err := x.SendInput(answer); err != nil {
					t.Fatalf("SendInput: %v", err)
				}
			case KindFinished:
				if r.FinishStatus != FinishOK {
					t.Errorf("finished %v", r.FinishStatus)
				}
				done = true
			}
		}
		if err := rd.Release(n); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(prompts, ","); got != "who? |false,Password: |true" {
		t.Errorf("prompts %q", got)
	}
	if out.String() != "hi X\n6\n" {
		t.Errorf("stdout %q, want %q", out.String(), "hi X\n6\n")
	}
	if err := x.SendInput("late"); !errors.Is(err, ErrState) {
		t.Errorf("SendInput after the end: %v, want ErrState", err)
	}
}

// openPty opens a pseudo-terminal of rows x cols (master, slave).
func openPty(t *testing.T, rows, cols uint16) (*os.File, *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ioctl := func(req uintptr, arg unsafe.Pointer) {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), req, uintptr(arg)); e != 0 {
			t.Fatalf("ioctl %#x: %v", req, e)
		}
	}
	var unlock int32
	ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	var n uint32
	ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n))
	ws := [4]uint16{rows, cols, 0, 0}
	ioctl(syscall.TIOCSWINSZ, unsafe.Pointer(&ws))
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// Stdout/Stderr answer isatty() and the terminal size in the program.
func TestTerminalOptions(t *testing.T) {
	_, slave := openPty(t, 33, 99)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	code := "import os, sys\nprint(sys.stdout.isatty(), sys.stderr.isatty(), tuple(os.get_terminal_size()))\n"
	s := openSessionWith(t, SessionOptions{Stdout: slave, Stderr: null})
	_, rd := execute(t, s, ExecuteOptions{Code: code})
	recs, err := readAll(t, rd, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := streamText(recs, StreamStdout); got != "True False (99, 33)\n" {
		t.Errorf("with a terminal: %q", got)
	}
	plain := openSessionWith(t, SessionOptions{})
	_, rd = execute(t, plain, ExecuteOptions{Code: "import sys\nprint(sys.stdout.isatty())\n"})
	recs, err = readAll(t, rd, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := streamText(recs, StreamStdout); got != "False\n" {
		t.Errorf("without: %q", got)
	}
}
