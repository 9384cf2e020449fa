package encode

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/store"
)

// prepared is one item after Prepare.
type preparedItem struct {
	pos  int // position in todo
	row  int // item_idx
	id   string
	val  any
	err  error
	took time.Duration
}

// batch is a run of prepared items in todo order.
type batch struct {
	rows []int
	vals []any
}

// encoded is a batch after Run.
type encoded struct {
	rows []int
	out  *extract.Output
}

// runPipeline encodes the items todo into pooled (and tokens) and counts
// into res: workers prepare, one goroutine assembles batches in order, one
// runs the encoder, one writes the outputs into the matrices.
func runPipeline(ctx context.Context, o Options, enc extract.Encoder, info extract.Info, src source, todo []int,
	pooled, tokens *store.FeatureMatrix, res *Result, log *slog.Logger) error {
	if len(todo) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	jobs := make(chan int, o.Workers)
	results := make(chan preparedItem, o.Workers)
	// slots bounds the items between the producer and the assembler, so a
	// slow item cannot make the reorder buffer grow without limit.
	window := 2*o.BatchSize + 2*o.Workers
	slots := make(chan struct{}, window)
	batches := make(chan batch, 1) // the next batch waits while one runs
	outputs := make(chan encoded, 1)

	// Producer.
	g.Go(func() error {
		defer close(jobs)
		for pos := range todo {
			select {
			case slots <- struct{}{}:
			case <-gctx.Done():
				return gctx.Err()
			}
			select {
			case jobs <- pos:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})

	// Workers: read the input and prepare it.
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			for pos := range jobs {
				r := todo[pos]
				t0 := time.Now()
				it := preparedItem{pos: pos, row: r}
				in, err := src.input(r)
				it.id = in.ID
				if err == nil {
					it.val, err = enc.Prepare(in)
				}
				it.err, it.took = err, time.Since(t0)
				select {
				case results <- it:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		wg.Wait()
		close(results)
		return nil
	})

	// Assembler: restore todo order, drop failures, cut batches.
	g.Go(func() error {
		defer close(batches)
		pending := map[int]preparedItem{}
		next := 0
		cur := batch{}
		flush := func() error {
			if len(cur.rows) == 0 {
				return nil
			}
			select {
			case batches <- cur:
			case <-gctx.Done():
				return gctx.Err()
			}
			cur = batch{}
			return nil
		}
		for it := range results {
			pending[it.pos] = it
			for {
				it, ok := pending[next]
				if !ok {
					break
				}
				delete(pending, next)
				next++
				<-slots
				if it.err != nil {
					res.Failed++
					if res.Failed <= maxFailureLog {
						log.Warn("item not encoded", "item", it.id, "item_idx", it.row, "err", it.err)
						res.FailedItems = append(res.FailedItems, fmt.Sprintf("%s: %v", it.id, it.err))
					}
					continue
				}
				cur.rows = append(cur.rows, it.row)
				cur.vals = append(cur.vals, it.val)
				if len(cur.rows) == o.BatchSize {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		}
		if gctx.Err() != nil {
			return gctx.Err()
		}
		return flush()
	})

	// Runner: one batch at a time.
	g.Go(func() error {
		defer close(outputs)
		for b := range batches {
			out := &extract.Output{}
			if err := enc.Run(gctx, b.vals, out); err != nil {
				return fmt.Errorf("encode: %s: batch of items %d..%d: %w", info.Name, b.rows[0], b.rows[len(b.rows)-1], err)
			}
			if err := checkOutput(info, tokens != nil, len(b.rows), out); err != nil {
				return err
			}
			select {
			case outputs <- encoded{rows: b.rows, out: out}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})

	// Writer: copy into the matrices, log progress.
	g.Go(func() error {
		t0, last := time.Now(), time.Now()
		done := 0
		tw := info.Tokens * info.TokenDim
		for e := range outputs {
			for k, r := range e.rows {
				copy(pooled.Data[r*info.Dim:(r+1)*info.Dim], e.out.Pooled[k*info.Dim:(k+1)*info.Dim])
				pooled.Valid[r] = true
				if tokens != nil {
					copy(tokens.Data[r*tw:(r+1)*tw], e.out.TokenStates[k*tw:(k+1)*tw])
					tokens.Valid[r] = true
					tokens.NTokens[r] = e.out.NTokens[k]
				}
			}
			done += len(e.rows)
			res.Encoded = done
			if time.Since(last) >= o.Progress {
				last = time.Now()
				el := time.Since(t0).Seconds()
				rate := float64(done) / el
				log.Info("encode progress", "encoder", info.Name, "encoded", done, "to_encode", len(todo),
					"items_per_second", rate, "eta_seconds", float64(len(todo)-done)/max(rate, 1e-9))
			}
		}
		return nil
	})
	return g.Wait()
}

// checkOutput validates the sizes of one Run's output.
func checkOutput(info extract.Info, withTokens bool, n int, out *extract.Output) error {
	if len(out.Pooled) != n*info.Dim {
		return fmt.Errorf("encode: %s returned %d pooled values for %d items of dim %d", info.Name, len(out.Pooled), n, info.Dim)
	}
	if withTokens {
		if len(out.TokenStates) != n*info.Tokens*info.TokenDim || len(out.NTokens) != n {
			return fmt.Errorf("encode: %s returned %d token values and %d counts for %d items of %d×%d", info.Name,
				len(out.TokenStates), len(out.NTokens), n, info.Tokens, info.TokenDim)
		}
		for k, c := range out.NTokens {
			if c < 0 || int(c) > info.Tokens {
				return fmt.Errorf("encode: %s returned n_tokens %d for batch row %d (max %d)", info.Name, c, k, info.Tokens)
			}
		}
	}
	return nil
}
