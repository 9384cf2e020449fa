// Package models lists the models `mmpipe train` knows. A new model
// package adds its Factory to All.
package models

import (
	"github.com/mmpipe/mmpipe/train"
	"github.com/mmpipe/mmpipe/train/models/itemknn"
	"github.com/mmpipe/mmpipe/train/models/lightgcn"
	"github.com/mmpipe/mmpipe/train/models/mf"
	"github.com/mmpipe/mmpipe/train/models/missrec"
	"github.com/mmpipe/mmpipe/train/models/mmssl"
	"github.com/mmpipe/mmpipe/train/models/pmmrec"
	"github.com/mmpipe/mmpipe/train/models/pop"
	"github.com/mmpipe/mmpipe/train/models/sasrec"
)

// All returns the factories of every model, in --model order.
func All() []*train.Factory {
	return []*train.Factory{pop.Factory(), mf.Factory(), lightgcn.Factory(), itemknn.Factory(), sasrec.Factory(), mmssl.Factory(), missrec.Factory(), pmmrec.Factory()}
}

// Lookup returns the factory of the named model.
func Lookup(name string) (*train.Factory, bool) {
	for _, f := range All() {
		if f.Name == name {
			return f, true
		}
	}
	return nil, false
}

// Names lists the model names.
func Names() []string {
	var out []string
	for _, f := range All() {
		out = append(out, f.Name)
	}
	return out
}
