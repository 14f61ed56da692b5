// Command bench-reader is the Go reader of the bindings benchmark
// (tools/bench): it attaches to RING with StartOldest, reads every record to
// the end in batches of 256 (released after use), sums the data lengths and
// prints one line:
//
//	records=<N> bytes=<sum of data lengths> seconds=<from attach to end>
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"shmrepl.dev/shmrepl"
)

func main() {
	if len(os.Args) != 2 || len(os.Args[1]) == 0 || os.Args[1][0] == '-' {
		fmt.Fprintln(os.Stderr, "usage: bench-reader RING")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "bench-reader:", err)
		os.Exit(1)
	}
}

func run(ring string) error {
	t0 := time.Now()
	rd, err := shmrepl.OpenReader(ring, shmrepl.StartOldest)
	if err != nil {
		return err
	}
	defer rd.Close()
	buf := make([]shmrepl.Record, 256)
	var records, bytes uint64
	for {
		n, err := rd.NextBatch(buf, shmrepl.Forever)
		if errors.Is(err, shmrepl.ErrEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("after %d records: %w", records, err)
		}
		for i := range buf[:n] {
			bytes += uint64(len(buf[i].Data()))
		}
		records += uint64(n)
		if err := rd.Release(n); err != nil {
			return err
		}
	}
	seconds := time.Since(t0).Seconds()
	_, err = fmt.Printf("records=%d bytes=%d seconds=%.6f\n", records, bytes, seconds)
	return err
}
