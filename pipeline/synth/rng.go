// Package synth generates synthetic raw datasets in the formats of public
// recommendation dumps, so that every stage of mmpipe can be exercised,
// tested and benchmarked without downloads.
//
// Two generators are provided:
//
//   - [Amazon2018Demo] writes a small multi-modal dataset in the Amazon
//     Review Data 2018 layout (reviews and metadata as gzipped JSON lines plus
//     procedurally drawn item images) whose items belong to hidden
//     categories that shape texts, images and user preferences, so that later
//     stages can check that encoders and models pick the signal up.
//   - [RatingsCSV] streams a large Amazon 2018 ratings-only CSV
//     (item,user,rating,timestamp) with Zipf item popularity, for ingest
//     benchmarks.
//
// All output is a pure function of the configuration (including its seed):
// every random stream is a math/rand/v2 PCG derived from the seed, and
// parallel work is split so that results do not depend on scheduling.
package synth

import (
	"errors"
	"math/rand/v2"
)

// alnum36 holds the digits of the upper-case base-36 alphabet used for ids.
const alnum36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// Stream identifiers keep the random streams of unrelated concerns apart, so
// that e.g. changing how images are drawn does not change the interactions.
const (
	streamItems uint64 = iota + 1
	streamUsers
	streamText
	streamSelect
	streamImages
	streamRatingsPerm
	streamRatingsBlock
)

// splitmix64 is the SplitMix64 finaliser, a bijective mixer used to derive
// well-spread PCG seeds from small integers.
func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// newRand returns a generator for the given seed, stream and index. Distinct
// (stream, index) pairs give independent-looking sequences.
func newRand(seed, stream, index uint64) *rand.Rand {
	return rand.New(rand.NewPCG(splitmix64(seed^splitmix64(stream)), splitmix64(index+stream<<40)))
}

// randAlnum appends n random upper-case alphanumeric characters to dst.
func randAlnum(dst []byte, r *rand.Rand, n int) []byte {
	for range n {
		dst = append(dst, alnum36[r.IntN(len(alnum36))])
	}
	return dst
}

// uniqueIDs returns n distinct ids, each prefix followed by width random
// upper-case alphanumeric characters.
func uniqueIDs(r *rand.Rand, n int, prefix string, width int) []string {
	seen := make(map[string]struct{}, n)
	ids := make([]string, 0, n)
	buf := make([]byte, 0, len(prefix)+width)
	for len(ids) < n {
		buf = randAlnum(append(buf[:0], prefix...), r, width)
		id := string(buf)
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		ids = append(ids, id)
	}
	return ids
}

// idModulus is 36^9, the number of distinct 9-digit base-36 strings.
const idModulus = 101559956668416

// idMultiplier is odd and not a multiple of 3, hence invertible modulo 36^9:
// index → index*idMultiplier mod 36^9 is a bijection that scatters
// consecutive indices over the id space.
const idMultiplier = 2654435761

// maxIndexedID bounds the indices accepted by appendIndexID so that the
// multiplication cannot overflow 64 bits.
const maxIndexedID = 1_000_000_000

// appendIndexID appends the 10-character id of index idx: prefix byte
// followed by 9 base-36 digits of a bijective scramble of idx (offset by
// the prefix, so that user and item ids of one index differ). Distinct
// indices below maxIndexedID give distinct ids.
func appendIndexID(dst []byte, prefix byte, idx uint64) []byte {
	v := (idx*idMultiplier + uint64(prefix)*0x5F3759DF) % idModulus
	var d [10]byte
	d[0] = prefix
	for i := 9; i >= 1; i-- {
		d[i] = alnum36[v%36]
		v /= 36
	}
	return append(dst, d[:]...)
}

// ErrInvalidConfig is wrapped by the errors that report an invalid
// [DemoConfig] or [RatingsConfig].
var ErrInvalidConfig = errors.New("synth: invalid config")
