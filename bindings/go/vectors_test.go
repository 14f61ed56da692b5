package shmrepl

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

type vector struct {
	Name              string   `json:"name"`
	Code              string   `json:"code"`
	Script            bool     `json:"script"`
	ClientExecutionID string   `json:"client_execution_id"`
	Stdout            string   `json:"stdout"`
	Stderr            string   `json:"stderr"`
	Kinds             []string `json:"kinds"`
	FinishStatus      string   `json:"finish_status"`
	ExitCode          int64    `json:"exit_code"`
	RingCapacity      uint64   `json:"ring_capacity"`
}

const vectorsPath = "../../tests/vectors/executions.json"

func loadVectors(t *testing.T) []vector {
	path := vectorsPath
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Executions []vector `json:"executions"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(f.Executions) == 0 {
		t.Fatalf("%s: no executions", path)
	}
	t.Logf("%d vectors from %s", len(f.Executions), path)
	return f.Executions
}

// Every conformance vector through the engine: bytes per stream, kinds in
// order, seq gap-free from 0, execution ids, the client id in STARTED, the end.
func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		v := v
		t.Run(v.Name, func(t *testing.T) {
			x, recs := run(t, ExecuteOptions{Code: v.Code, Script: v.Script,
				ClientExecutionID: v.ClientExecutionID, RingCapacity: v.RingCapacity})
			if got, want := kinds(recs), strings.Join(v.Kinds, ","); got != want {
				t.Errorf("kinds %s, want %s", got, want)
			}
			if got := streamText(recs, StreamStdout); got != v.Stdout {
				t.Errorf("stdout %q, want %q", got, v.Stdout)
			}
			if got := streamText(recs, StreamStderr); got != v.Stderr {
				t.Errorf("stderr %q, want %q", got, v.Stderr)
			}
			for i, r := range recs {
				if r.Seq != uint64(i) {
					t.Errorf("record %d has seq %d", i, r.Seq)
				}
				if r.ExecutionID != x.ID() {
					t.Errorf("record %d has execution id %d, want %d", i, r.ExecutionID, x.ID())
				}
				// a split write: MORE is followed by CONTINUED, CONTINUED preceded by MORE
				if more := i > 0 && recs[i-1].Flags&FlagMore != 0; more != (r.Flags&FlagContinued != 0) {
					t.Errorf("record %d flags %#x after flags %#x", i, r.Flags, recs[i-1].Flags)
				}
				if r.raw == 0 {
					t.Errorf("record %d has no raw bytes", i)
				}
			}
			if len(recs) == 0 {
				t.Fatal("no records")
			}
			if recs[0].Kind != KindStarted || recs[0].data != v.ClientExecutionID {
				t.Errorf("first record %s %q, want STARTED %q", recs[0].Kind, recs[0].data, v.ClientExecutionID)
			}
			last := recs[len(recs)-1]
			if last.Kind != KindFinished || last.FinishStatus.String() != v.FinishStatus || last.ExitCode != v.ExitCode {
				t.Errorf("last record %s status %s exit %d, want FINISHED %s %d",
					last.Kind, last.FinishStatus, last.ExitCode, v.FinishStatus, v.ExitCode)
			}
			if last.Signal() != 0 {
				t.Errorf("FINISHED says signal %d", last.Signal())
			}
		})
	}
}
