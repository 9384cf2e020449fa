// Package builtin holds mmpipe's weight-free encoders, the defaults of the
// demo and a baseline that needs no download:
//
//   - text-hash: hashed TF-IDF of normalised words and word bigrams, a fixed
//     signed random projection, L2 normalisation (see TextHash);
//   - image-stats: colour histograms, gradient-orientation histograms on a
//     spatial grid and a small CIELAB thumbnail, signed-root and L2
//     normalised and projected (see ImageStats).
//
// Both are deterministic: the same input, options and seed give the same
// vector bit for bit, on every run and whatever the number of workers.
// Both can give token-level outputs (words; image patches) for PMMRec-style
// models. All the work happens in Prepare, which runs on the encode stage's
// worker pool; Run only copies the prepared vectors into the batch output.
package builtin

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"

	"github.com/mmpipe/mmpipe/extract"
)

// Registry names of the built-in encoders.
const (
	TextHashName   = "text-hash"
	ImageStatsName = "image-stats"
)

// Factories returns the built-in encoders by registry name.
func Factories() map[string]extract.Factory {
	return map[string]extract.Factory{
		TextHashName:   func(o extract.Options) (extract.Encoder, error) { return NewTextHash(o) },
		ImageStatsName: func(o extract.Options) (extract.Encoder, error) { return NewImageStats(o) },
	}
}

// maxDim bounds the projection width.
const maxDim = 1 << 14

// checkCommon validates the options every built-in encoder shares.
func checkCommon(name string, o extract.Options) error {
	switch o.Device {
	case "", "cpu":
	default:
		return fmt.Errorf("%s: device %q: the built-in encoders run on the CPU only", name, o.Device)
	}
	if o.Dim < 0 || o.Dim > maxDim {
		return fmt.Errorf("%s: dim %d outside [1, %d]", name, o.Dim, maxDim)
	}
	if o.MaxTokens < 0 {
		return fmt.Errorf("%s: max tokens %d is negative", name, o.MaxTokens)
	}
	return nil
}

// splitmix64 is the SplitMix64 output function: a bijective mixer of
// 64-bit values, used to derive every pseudo-random number of this package
// from the seed.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// addSigned adds w·s to dst, where s is the ±1 vector whose bit j of
// splitmix64(key+k) (k = j/64) says the sign of s[j] (1: negative).
func addSigned(dst []float32, key uint64, w float32) {
	for k := 0; k*64 < len(dst); k++ {
		bits := splitmix64(key + uint64(k)*0x632be59bd9b4e019)
		blk := dst[k*64 : min(len(dst), (k+1)*64)]
		for j := range blk {
			// Branch-free ±w: flip the sign bit when the bit is set.
			blk[j] += math.Float32frombits(math.Float32bits(w) ^ uint32(bits>>j&1)<<31)
		}
	}
}

// normalize scales v to unit L2 norm and reports whether it was non-zero.
func normalize(v []float32) bool {
	s := 0.0
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return false
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
	return true
}

// prepared is the per-item result of Prepare: the pooled vector and, with
// token output, n token vectors (padded to the encoder's token count).
type prepared struct {
	pooled []float32
	tokens []float32
	n      int32
}

// copyOut fills out from a batch of prepared values.
func copyOut(info extract.Info, batch []any, out *extract.Output, withTokens bool) error {
	n := len(batch)
	out.Pooled = resize(out.Pooled, n*info.Dim)
	if withTokens {
		out.TokenStates = resize(out.TokenStates, n*info.Tokens*info.TokenDim)
		clear(out.TokenStates)
		if cap(out.NTokens) < n {
			out.NTokens = make([]int32, n)
		}
		out.NTokens = out.NTokens[:n]
	} else {
		out.TokenStates, out.NTokens = out.TokenStates[:0], out.NTokens[:0]
	}
	w := info.Tokens * info.TokenDim
	for k, p := range batch {
		pp, ok := p.(*prepared)
		if !ok || len(pp.pooled) != info.Dim {
			return fmt.Errorf("%s: batch row %d holds %T, not a value prepared by this encoder", info.Name, k, p)
		}
		copy(out.Pooled[k*info.Dim:], pp.pooled)
		if withTokens {
			copy(out.TokenStates[k*w:(k+1)*w], pp.tokens)
			out.NTokens[k] = pp.n
		}
	}
	return nil
}

func resize(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// paramsHash returns the hex sha256 of a parameter description followed by
// the raw bytes of the given tables: the model_sha256 of a built-in
// encoder.
func paramsHash(params string, tables ...[]float32) string {
	h := sha256.New()
	h.Write([]byte(params))
	for _, t := range tables {
		buf := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+4*len(t)), uint64(len(t)))
		for _, v := range t {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// errNoInput marks items a built-in encoder cannot encode (no text, no
// words, no image).
var errNoInput = errors.New("no input")
