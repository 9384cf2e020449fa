package train

import (
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/mmpipe/mmpipe/store"
)

// writeCurves draws curves.png: the mean training loss terms per epoch
// (top) and the validation select metric per validated epoch (bottom).
func writeCurves(path, model, metric string, hist []EpochRecord) error {
	top := plot.New()
	top.Title.Text = model + ": training loss"
	top.X.Label.Text = "epoch"
	top.Y.Label.Text = "mean loss"
	var terms []string
	for _, r := range hist {
		for k := range r.Losses {
			if !slices.Contains(terms, k) {
				terms = append(terms, k)
			}
		}
	}
	slices.Sort(terms)
	palette := []color.Color{
		color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
		color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
	}
	for n, term := range terms {
		var xy plotter.XYs
		for _, r := range hist {
			if v, ok := r.Losses[term]; ok && finite(v) {
				xy = append(xy, plotter.XY{X: float64(r.Epoch), Y: v})
			}
		}
		if err := addLine(top, xy, term, palette[n%len(palette)]); err != nil {
			return err
		}
	}
	bottom := plot.New()
	bottom.Title.Text = "validation " + metric
	bottom.X.Label.Text = "epoch"
	bottom.Y.Label.Text = metric
	var xy plotter.XYs
	for _, r := range hist {
		if v, ok := r.Valid[metric]; ok && finite(v) {
			xy = append(xy, plotter.XY{X: float64(r.Epoch), Y: v})
		}
	}
	if err := addLine(bottom, xy, metric, palette[0]); err != nil {
		return err
	}
	const w, h = 8 * vg.Inch, 8 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(6), PadBottom: vg.Points(6),
		PadLeft: vg.Points(6), PadRight: vg.Points(12)}
	canvases := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	af, err := store.OpenAtomicFile(path)
	if err != nil {
		return err
	}
	defer af.Abort()
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(af); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return af.Commit()
}

// addLine adds a line with points (nothing for an empty series).
func addLine(p *plot.Plot, xy plotter.XYs, name string, c color.Color) error {
	if len(xy) == 0 {
		return nil
	}
	l, pts, err := plotter.NewLinePoints(xy)
	if err != nil {
		return fmt.Errorf("curves: %s: %w", name, err)
	}
	l.Color, pts.Color = c, c
	pts.Radius = vg.Points(1.5)
	p.Add(l, pts)
	p.Legend.Add(name, l)
	p.Legend.Top = true
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
