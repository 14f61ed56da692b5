package shmrepl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

func TestErrorDetails(t *testing.T) {
	s := newSession(t)
	_, rd := execute(t, s, ExecuteOptions{Filename: "boom.py",
		Code: "def f():\n    raise ValueError('boom')\nf()\n"})
	var details *ErrorDetails
	var kindsSeen []string
	for {
		r, err := rd.Next(30 * time.Second)
		if isEOF(err) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		kindsSeen = append(kindsSeen, r.Kind.String())
		if r.Kind == KindError {
			if string(r.Data()) != "boom" {
				t.Errorf("ERROR data %q", r.Data())
			}
			if details, err = r.ErrorDetails(); err != nil {
				t.Fatal(err)
			}
		} else if r.Kind == KindFinished && r.FinishStatus != FinishError {
			t.Errorf("finish %s", r.FinishStatus)
		} else if r.Kind != KindFinished {
			if _, err := r.ErrorDetails(); !errors.Is(err, ErrInvalid) {
				t.Errorf("error details of a %s record: %v", r.Kind, err)
			}
		}
		rd.Release(1)
	}
	if details == nil {
		t.Fatalf("no ERROR record in %v", kindsSeen)
	}
	if details.Ename != "ValueError" || details.Evalue != "boom" {
		t.Errorf("details %q %q", details.Ename, details.Evalue)
	}
	tb := strings.Join(details.Traceback, "")
	if len(details.Traceback) < 2 || !strings.Contains(tb, "boom.py") || !strings.Contains(tb, "in f") {
		t.Errorf("traceback %q", details.Traceback)
	}
}

// 10,000 lines through the io.Reader helper: every byte, in order, per stream.
func TestOutputReader(t *testing.T) {
	s := newSession(t)
	code := "import sys\nfor i in range(10000):\n    print(f'Line {i}: ' + 'x' * 100)\n    if i % 1000 == 0: sys.stderr.write(f'err {i}\\n')\n"
	_, rd := execute(t, s, ExecuteOptions{Code: code})
	var want bytes.Buffer
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&want, "Line %d: %s\n", i, strings.Repeat("x", 100))
	}
	out := rd.Output(StreamStdout)
	// Small reads too: a record's bytes span several Read calls.
	head := make([]byte, 7)
	if _, err := io.ReadFull(out, head); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	got := append(head, rest...)
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("stdout: %d bytes, want %d", len(got), want.Len())
	}
	if n, err := out.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read after the end: %d %v", n, err)
	}
	if rd.Held() != 0 {
		t.Errorf("the output reader holds %d records at the end", rd.Held())
	}

	_, rd2 := execute(t, s, ExecuteOptions{Code: code})
	errText, err := io.ReadAll(rd2.Output(StreamStderr))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(errText), "err 0\nerr 1000\n") || strings.Count(string(errText), "\n") != 10 {
		t.Errorf("stderr %q", errText)
	}
}

func TestExecuteOptions(t *testing.T) {
	_, recs := run(t, ExecuteOptions{Code: "import sys\nprint(sys.argv)\n6*7\n", Argv: []string{"prog", "a b", "é"}})
	if got := streamText(recs, StreamStdout); got != "['prog', 'a b', 'é']\n" {
		t.Errorf("argv: %q", got)
	}
	var result []string
	for _, r := range recs {
		if r.Kind == KindResult {
			result = append(result, r.data)
		}
	}
	if len(result) != 1 || result[0] != "42" {
		t.Errorf("results %q", result)
	}
	_, recs = run(t, ExecuteOptions{Code: "6*7\n", Script: true})
	if k := kinds(recs); k != "STARTED,FINISHED" {
		t.Errorf("script mode kinds %s", k)
	}
}

// Output of a thread that outlives its execution goes to the session's
// background ring.
func TestBackgroundRing(t *testing.T) {
	s := newSession(t)
	name := s.BackgroundRing()
	if name == "" {
		t.Fatal("the engine gives no background ring")
	}
	bg, err := OpenReader(name, StartNewest)
	if err != nil {
		t.Fatal(err)
	}
	defer bg.Close()
	x, recs := func() (*Execution, []rec) {
		x, rd := execute(t, s, ExecuteOptions{Code: "import threading, time\n" +
			"def later():\n    time.sleep(0.3)\n    print('from the background', flush=True)\n" +
			"threading.Thread(target=later).start()\nprint('done')\n"})
		recs, err := readAll(t, rd, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return x, recs
	}()
	if got := streamText(recs, StreamStdout); got != "done\n" {
		t.Errorf("execution stdout %q", got)
	}
	var got strings.Builder
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(got.String(), "from the background\n") {
		r, err := bg.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("background ring: %v (so far %q)", err, got.String())
		}
		if r.Kind == KindOutput {
			if r.ExecutionID != x.ID() {
				t.Errorf("background record of execution %d, want %d", r.ExecutionID, x.ID())
			}
			got.Write(r.Data())
		}
		bg.Release(1)
	}
}
