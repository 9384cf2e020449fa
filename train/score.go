package train

import (
	"fmt"

	"github.com/mmpipe/mmpipe/train/eval"
	"github.com/mmpipe/mmpipe/train/sparse"
)

// DotScorer returns a ScoreFunc that scores user u and item i by the dot
// product of row u of userVecs and row i of itemVecs (userVecs must not
// change while it is used; itemVecs is copied, transposed, once). It is
// safe for concurrent use: each call gathers its users into its own buffer
// and runs the product on its own goroutine (evaluation runs several calls
// at once).
func DotScorer(userVecs, itemVecs sparse.Mat) eval.ScoreFunc {
	itemsT := itemVecs.Transpose()
	return func(users []int32, scores []float32) error {
		if len(scores) != len(users)*itemVecs.Rows {
			return fmt.Errorf("score buffer of %d for %d users × %d items", len(scores), len(users), itemVecs.Rows)
		}
		u := sparse.NewMat(len(users), userVecs.Cols)
		if err := sparse.Gather(u, userVecs, users); err != nil {
			return err
		}
		return sparse.MulABtT(sparse.Mat{Rows: len(users), Cols: itemVecs.Rows, Data: scores}, u, itemsT, 1)
	}
}

// EpochBatches returns ⌈rows / batch⌉, the batches of an epoch that
// visits rows samples.
func EpochBatches(rows, batch int) int {
	if rows <= 0 || batch <= 0 {
		return 0
	}
	return (rows + batch - 1) / batch
}
