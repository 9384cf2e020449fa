package train

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// progress shows the state of the epoch in progress: a bar redrawn in
// place on a terminal, or a log line every 30 seconds otherwise.
type progress struct {
	w       io.Writer
	log     *slog.Logger
	epochs  int
	total   int
	epoch   int
	start   time.Time
	drawn   time.Time
	logged  time.Time
	first   int
	visible bool
}

func newProgress(w io.Writer, log *slog.Logger, epochs, total int) *progress {
	return &progress{w: w, log: log, epochs: epochs, total: total}
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) begin(epoch, done int) {
	p.epoch, p.first = epoch, done
	p.start = time.Now()
	p.drawn, p.logged = time.Time{}, p.start
}

func (p *progress) step(done int, loss float64) {
	now := time.Now()
	if p.w == nil {
		if now.Sub(p.logged) >= defaultLogEvery {
			p.logged = now
			p.log.Info("epoch in progress", "epoch", p.epoch, "batch", done, "of", p.total, "loss", round(loss, 6))
		}
		return
	}
	if now.Sub(p.drawn) < 100*time.Millisecond && done < p.total {
		return
	}
	p.drawn = now
	const width = 30
	fill := width * done / max(1, p.total)
	eta := ""
	if n := done - p.first; n > 0 {
		left := time.Duration(float64(now.Sub(p.start)) / float64(n) * float64(p.total-done))
		eta = " eta " + left.Round(100*time.Millisecond).String()
	}
	fmt.Fprintf(p.w, "\r\033[Kepoch %d/%d [%s%s] %d/%d loss %.5f%s", p.epoch, p.epochs,
		strings.Repeat("=", fill), strings.Repeat(" ", width-fill), done, p.total, loss, eta)
	p.visible = true
}

// clear removes the bar before a log line is printed.
func (p *progress) clear() {
	if p.w != nil && p.visible {
		fmt.Fprint(p.w, "\r\033[K")
		p.visible = false
	}
}
