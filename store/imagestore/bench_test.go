package imagestore

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkCommit commits batches of 1,000 new 40 KiB images (building the
// batch, which hashes the images, is not timed).
func BenchmarkCommit(b *testing.B) {
	const perBatch, size = 1000, 40 << 10
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("nosync=%v", noSync), func(b *testing.B) {
			s := openT(b, newDir(b), Options{NoSync: noSync})
			img := content("bench", size)
			b.SetBytes(perBatch * size)
			n := 0
			for b.Loop() {
				b.StopTimer()
				var batch Batch
				for range perBatch {
					img[0], img[1], img[2] = byte(n), byte(n>>8), byte(n>>16) // distinct values
					batch.PutImage(fmt.Sprintf("item%09d", n), img, LedgerEntry{URL: "http://x"})
					n++
				}
				b.StartTimer()
				if err := s.Commit(&batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}

// BenchmarkGetParallel reads random 40 KiB images from all goroutines.
func BenchmarkGetParallel(b *testing.B) {
	const n, size = 4000, 40 << 10
	s := openT(b, newDir(b), Options{NoSync: true})
	var batch Batch
	for i := range n {
		k := fmt.Sprintf("item%09d", i)
		batch.PutImage(k, content(k, size), LedgerEntry{})
		if batch.Len() == 500 {
			commitT(b, s, &batch)
			batch.Reset()
		}
	}
	b.SetBytes(size)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			img, ok, err := s.Get(fmt.Sprintf("item%09d", r.IntN(n)))
			if err != nil || !ok || len(img) != size {
				b.Fatalf("Get: %d bytes, %v, %v", len(img), ok, err)
			}
		}
	})
}
