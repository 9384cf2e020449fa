package pmmrec

import (
	"errors"
	"fmt"

	"github.com/mmpipe/mmpipe/train"
)

// tokenTable gives the frozen backbone's token states of every item of one
// modality: T token slots (≤ max_tokens) of dim values, n[r] used slots of
// item r (0 for an item without the input).
type tokenTable struct {
	name   string
	T, dim int
	n      []int32
	// row returns item r's values: at least T·dim, token-major.
	row   func(r int) []float32
	close func()
}

// memTokens builds a table from in-memory rows (tests, pooled files).
func memTokens(name string, T, dim int, n []int32, data [][]float32) *tokenTable {
	return &tokenTable{name: name, T: T, dim: dim, n: n, row: func(r int) []float32 { return data[r] }, close: func() {}}
}

// openTokens opens the token file of a modality: name is a modality
// ("text": the one features/text.*.tokens.arrow file), a stem
// ("text.text-hash.tokens" or "text.text-hash"); when the dataset has no
// token file of that name, a pooled feature file (Data.Features) is read
// as one token per item.
func openTokens(d *train.Data, name string, maxTokens int) (*tokenTable, error) {
	ff, err := d.TokenFeatures(name)
	if errors.Is(err, train.ErrNoFeatures) {
		// No token file: a pooled file is one token per item.
		var err2 error
		if ff, err2 = d.Features(name); err2 != nil {
			return nil, fmt.Errorf("%w; and no pooled features either (mmpipe encode --tokens writes token files): %w", err, err2)
		}
	} else if err != nil {
		return nil, err
	}
	t := &tokenTable{name: ff.Path(), dim: ff.Dim(), n: make([]int32, d.NumItems), close: func() { ff.Close() }}
	if ff.Tokens() == 0 { // pooled: one token
		t.T = 1
		for r := range t.n {
			if ff.Valid(r) {
				t.n[r] = 1
			}
		}
	} else {
		t.T = min(ff.Tokens(), maxTokens)
		for r := range t.n {
			if ff.Valid(r) {
				t.n[r] = int32(min(ff.NTokens(r), t.T))
			}
		}
	}
	t.row = ff.Vector
	return t, nil
}

// gather fills tok [len(rows), T, dim] and mask [len(rows), T] with the
// tokens of item rows (row 0 = padding: no tokens).
func (t *tokenTable) gather(rows []int32) (tok, mask []float32) {
	w := t.T * t.dim
	tok, mask = make([]float32, len(rows)*w), make([]float32, len(rows)*t.T)
	for k, r := range rows {
		if r <= 0 {
			continue
		}
		n := int(t.n[r-1])
		copy(tok[k*w:k*w+n*t.dim], t.row(int(r - 1))[:n*t.dim])
		for j := range n {
			mask[k*t.T+j] = 1
		}
	}
	return tok, mask
}
