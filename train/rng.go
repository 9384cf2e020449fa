package train

import (
	"fmt"
	"math/rand/v2"
)

// RNG streams of a run: parameter initialisation and training (sampling,
// dropout) draw from separate streams of the same seed, so that changing
// how a model initialises does not change which batches it sees.
const (
	StreamInit  = 1
	StreamTrain = 2
)

// RNG is a seeded random generator whose whole state can be saved in a
// checkpoint and restored (a PCG-DXSM source; math/rand/v2's Rand keeps no
// state of its own).
type RNG struct {
	*rand.Rand
	src *rand.PCG
}

// NewRNG returns the generator of stream for seed.
func NewRNG(seed, stream uint64) *RNG {
	src := rand.NewPCG(seed, 0x9e3779b97f4a7c15^stream)
	return &RNG{Rand: rand.New(src), src: src}
}

// State returns the generator's state.
func (r *RNG) State() ([]byte, error) {
	b, err := r.src.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("rng state: %w", err)
	}
	return b, nil
}

// Restore sets the generator's state from State's output.
func (r *RNG) Restore(b []byte) error {
	if err := r.src.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("rng state: %w", err)
	}
	return nil
}
