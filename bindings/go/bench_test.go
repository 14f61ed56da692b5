package shmrepl

import (
	"testing"
	"time"
)

// BenchmarkReadFullRing reads a finished ring of 100,001+ records from its first
// record with NextBatch (256), per iteration: go test -run - -bench ReadFullRing.
func BenchmarkReadFullRing(b *testing.B) {
	s, err := testClient.OpenSession()
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	x, err := s.Execute(ExecuteOptions{Script: true, RingCapacity: 64 << 20,
		Code: "for i in range(100000): print(f'Line {i}: ' + 'x' * 100)\n"})
	if err != nil {
		b.Fatal(err)
	}
	defer x.Close()
	// This reader holds every record, so each new reader starts at seq 0.
	pin, err := x.Reader(StartOldest)
	if err != nil {
		b.Fatal(err)
	}
	defer pin.Close()
	buf := make([]Record, 256)
	want := 0
	for {
		n, err := pin.NextBatch(buf, 60*time.Second)
		if isEOF(err) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		want += n
	}
	b.ResetTimer()
	t0 := time.Now()
	total := 0
	for i := 0; i < b.N; i++ {
		rd, err := OpenReader(x.RingName(), StartOldest)
		if err != nil {
			b.Fatal(err)
		}
		records, bytes := 0, 0
		for {
			n, err := rd.NextBatch(buf, Forever)
			if isEOF(err) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			for j := range buf[:n] {
				bytes += len(buf[j].Data())
			}
			records += n
			rd.Release(n)
		}
		rd.Close()
		if records != want || bytes == 0 {
			b.Fatalf("read %d records, want %d", records, want)
		}
		total += records
	}
	b.ReportMetric(float64(total)/time.Since(t0).Seconds(), "records/s")
}
