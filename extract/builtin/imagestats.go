package builtin

import (
	"context"
	"fmt"
	"image"
	"math"

	"github.com/mmpipe/mmpipe/extract"
	"github.com/mmpipe/mmpipe/extract/vision"
	"github.com/mmpipe/mmpipe/store"
)

// Defaults and layout of the image-stats encoder.
const (
	ImageStatsDim = 256 // default projection width

	isWork     = 112 // working image side
	isHue      = 8   // colour histogram: hue bins
	isSat      = 4   //   saturation bins
	isVal      = 4   //   value bins
	isCells    = 4   // gradient histogram grid (isCells × isCells cells)
	isOri      = 9   // orientation bins over [0, π)
	isThumb    = 8   // thumbnail side (CIELAB)
	isGrid     = 7   // token grid (isGrid × isGrid patches)
	isPatchHue = 8   // per-patch colour histogram: hue bins
	isPatchSV  = 2   //   saturation and value bins each
	isSubCells = 2   // per-patch gradient histogram: 2 × 2 cells

	isColorLen  = isHue * isSat * isVal
	isHOGLen    = isCells * isCells * isOri
	isThumbLen  = isThumb * isThumb * 3
	isRawLen    = isColorLen + isHOGLen + isThumbLen
	isPatchLen  = isPatchHue*isPatchSV*isPatchSV + isSubCells*isSubCells*isOri + 3
	isTokens    = isGrid * isGrid
	imageStatsV = "image-stats/1"
)

// ImageStats is the image-stats encoder. For each image it
//
//  1. decodes it (JPEG, PNG, GIF, WebP; alpha dropped) and resizes it to
//     112×112 ignoring the aspect ratio (Pillow-compatible antialiased
//     bilinear, see package vision);
//  2. computes three groups of statistics:
//     - a colour histogram in HSV, 8 hue × 4 saturation × 4 value bins
//     (128 values, fractions of the pixels);
//     - gradient-orientation histograms (HOG-like): central differences of
//     the luma (0.299 R + 0.587 G + 0.114 B), unsigned orientation in 9
//     bins over [0, π) with linear interpolation between neighbouring
//     bins, weighted by the gradient magnitude, on a 4 × 4 grid of 28-pixel
//     cells (144 values);
//     - an 8 × 8 thumbnail (block means) in CIELAB (D65), L/100, a/100,
//     b/100 (192 values);
//  3. applies the signed square root to every value and L2-normalises each
//     group, then scales the concatenation (464 values) by 1/√3 to unit
//     norm;
//  4. projects it to Dim values with a fixed signed random projection (raw
//     value i adds ±value to each output coordinate, signs from SplitMix64
//     keyed by the seed and i) and L2-normalises the result.
//
// The token output (Options.TokenOutput) has one vector per patch of a
// 7 × 7 grid over the working image (16-pixel patches, row-major, 49
// tokens, all present): an 8 × 2 × 2 HSV histogram, 2 × 2 × 9 gradient
// histograms and the mean CIELAB colour of the patch, normalised as in step
// 3, projected to Dim with its own signs and L2-normalised.
// Options.MaxTokens does not apply.
//
// model_sha256 is the sha256 of the parameters (version, layout, Dim,
// seed): the projection is a function of them.
type ImageStats struct {
	dim           int
	tokens        bool
	seed          uint64
	key, tokenKey uint64
	info          extract.Info
	workFilter    vision.Filter
}

// NewImageStats builds an image-stats encoder (Dim default 256).
func NewImageStats(o extract.Options) (*ImageStats, error) {
	if err := checkCommon(ImageStatsName, o); err != nil {
		return nil, err
	}
	e := &ImageStats{dim: o.Dim, tokens: o.TokenOutput, seed: o.Seed, workFilter: vision.Bilinear}
	if e.dim == 0 {
		e.dim = ImageStatsDim
	}
	e.key = splitmix64(e.seed ^ 0x696d616765737461)
	e.tokenKey = splitmix64(e.key ^ 0x746f6b656e73)
	params := fmt.Sprintf("%s work=%d hsv=%dx%dx%d hog=%dx%dx%d thumb=%d lab grid=%d dim=%d seed=%d",
		imageStatsV, isWork, isHue, isSat, isVal, isCells, isCells, isOri, isThumb, isGrid, e.dim, e.seed)
	pre := fmt.Sprintf("rgb (alpha dropped); resize to %dx%d ignoring aspect (%s, pillow); hsv histogram %dx%dx%d; "+
		"hog %dx%d cells x %d unsigned orientations; %dx%d cielab thumbnail; signed sqrt, l2 per group",
		isWork, isWork, e.workFilter, isHue, isSat, isVal, isCells, isCells, isOri, isThumb, isThumb)
	pre += fmt.Sprintf("; tokens: %dx%d patches (hsv %dx%dx%d, hog %dx%dx%d, mean lab)", isGrid, isGrid,
		isPatchHue, isPatchSV, isPatchSV, isSubCells, isSubCells, isOri)
	e.info = extract.Info{
		Name: ImageStatsName, Modality: "image", Dim: e.dim,
		Meta: store.FeatureMeta{
			Modality: "image", Encoder: ImageStatsName, ModelSHA256: paramsHash(params),
			Preprocess: pre, Pooling: fmt.Sprintf("concatenated statistics, signed random projection %d→%d, l2", isRawLen, e.dim),
			Normalized: true,
		},
	}
	if e.tokens {
		e.info.Tokens, e.info.TokenDim = isTokens, e.dim
	}
	return e, nil
}

// Info implements extract.Encoder.
func (e *ImageStats) Info() extract.Info { return e.info }

// Close implements extract.Encoder.
func (e *ImageStats) Close() error { return nil }

// Run implements extract.Encoder.
func (e *ImageStats) Run(ctx context.Context, batch []any, out *extract.Output) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return copyOut(e.info, batch, out, e.tokens)
}

// pixelStats holds the per-pixel quantities of the working image.
type pixelStats struct {
	r, g, b  [isWork * isWork]float32 // [0, 1]
	colorBin [isWork * isWork]uint8   // global HSV bin
	patchBin [isWork * isWork]uint8   // per-patch HSV bin
	mag      [isWork * isWork]float32 // gradient magnitude
	oriLo    [isWork * isWork]uint8   // lower orientation bin
	oriFrac  [isWork * isWork]float32 // share of the upper bin
	luma     [isWork * isWork]float32
}

// Prepare implements extract.Encoder: decode, statistics, projection.
func (e *ImageStats) Prepare(in extract.Input) (any, error) {
	if len(in.Image) == 0 {
		return nil, fmt.Errorf("%s: item %s: %w (no image bytes)", ImageStatsName, in.ID, errNoInput)
	}
	img, err := vision.DecodeImage(in.Image, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: item %s: %w", ImageStatsName, in.ID, err)
	}
	return e.encode(vision.ResizeImage(img, isWork, isWork, image.Rect(0, 0, isWork, isWork), e.workFilter)), nil
}

// encode computes the vectors of a working image.
func (e *ImageStats) encode(w *vision.RGB) *prepared {
	ps := &pixelStats{}
	ps.fill(w)
	raw := make([]float32, isRawLen)
	col, hog, th := raw[:isColorLen], raw[isColorLen:isColorLen+isHOGLen], raw[isColorLen+isHOGLen:]
	const cell = isWork / isCells
	for i := range isWork * isWork {
		col[ps.colorBin[i]]++
		x, y := i%isWork, i/isWork
		c := (y/cell)*isCells + x/cell
		m := ps.mag[i]
		lo := int(ps.oriLo[i])
		hog[c*isOri+lo] += m * (1 - ps.oriFrac[i])
		hog[c*isOri+(lo+1)%isOri] += m * ps.oriFrac[i]
	}
	const tb = isWork / isThumb
	for ty := range isThumb {
		for tx := range isThumb {
			l, a, b := ps.meanLab(tx*tb, ty*tb, tb)
			k := 3 * (ty*isThumb + tx)
			th[k], th[k+1], th[k+2] = l, a, b
		}
	}
	groupNorm(col, hog, th)
	p := &prepared{pooled: make([]float32, e.dim)}
	project(p.pooled, raw, e.key)
	normalize(p.pooled)
	if !e.tokens {
		return p
	}
	p.tokens = make([]float32, isTokens*e.dim)
	p.n = isTokens
	const patch = isWork / isGrid
	const sub = patch / isSubCells
	raw = raw[:isPatchLen]
	for py := range isGrid {
		for px := range isGrid {
			clear(raw)
			hist := raw[:isPatchHue*isPatchSV*isPatchSV]
			phog := raw[len(hist) : len(hist)+isSubCells*isSubCells*isOri]
			lab := raw[len(hist)+len(phog):]
			for y := py * patch; y < (py+1)*patch; y++ {
				for x := px * patch; x < (px+1)*patch; x++ {
					i := y*isWork + x
					hist[ps.patchBin[i]]++
					c := ((y-py*patch)/sub)*isSubCells + (x-px*patch)/sub
					lo := int(ps.oriLo[i])
					phog[c*isOri+lo] += ps.mag[i] * (1 - ps.oriFrac[i])
					phog[c*isOri+(lo+1)%isOri] += ps.mag[i] * ps.oriFrac[i]
				}
			}
			lab[0], lab[1], lab[2] = ps.meanLab(px*patch, py*patch, patch)
			groupNorm(hist, phog, lab)
			t := p.tokens[(py*isGrid+px)*e.dim : (py*isGrid+px+1)*e.dim]
			project(t, raw, e.tokenKey)
			normalize(t)
		}
	}
	return p
}

// fill computes the per-pixel quantities of w (isWork × isWork).
func (ps *pixelStats) fill(w *vision.RGB) {
	for i := range isWork * isWork {
		r, g, b := float32(w.Pix[3*i])/255, float32(w.Pix[3*i+1])/255, float32(w.Pix[3*i+2])/255
		ps.r[i], ps.g[i], ps.b[i] = r, g, b
		ps.luma[i] = 0.299*r + 0.587*g + 0.114*b
		h, s, v := hsv(r, g, b)
		hb := min(int(h*isHue), isHue-1)
		ps.colorBin[i] = uint8((hb*isSat+min(int(s*isSat), isSat-1))*isVal + min(int(v*isVal), isVal-1))
		ph := min(int(h*isPatchHue), isPatchHue-1)
		ps.patchBin[i] = uint8((ph*isPatchSV+min(int(s*isPatchSV), isPatchSV-1))*isPatchSV + min(int(v*isPatchSV), isPatchSV-1))
	}
	at := func(x, y int) float32 {
		x = max(0, min(isWork-1, x))
		y = max(0, min(isWork-1, y))
		return ps.luma[y*isWork+x]
	}
	for y := range isWork {
		for x := range isWork {
			i := y*isWork + x
			gx := float64(at(x+1, y) - at(x-1, y))
			gy := float64(at(x, y+1) - at(x, y-1))
			ps.mag[i] = float32(math.Sqrt(gx*gx + gy*gy))
			ang := math.Atan2(gy, gx)
			if ang < 0 {
				ang += math.Pi
			}
			if ang >= math.Pi {
				ang -= math.Pi
			}
			pos := ang/(math.Pi/isOri) - 0.5 // bin centres at (k+0.5)·π/9
			lo := math.Floor(pos)
			ps.oriFrac[i] = float32(pos - lo)
			ps.oriLo[i] = uint8((int(lo) + isOri) % isOri)
		}
	}
}

// meanLab returns the CIELAB colour (L/100, a/100, b/100) of the mean sRGB
// colour of the n × n block at (x0, y0).
func (ps *pixelStats) meanLab(x0, y0, n int) (l, a, b float32) {
	var sr, sg, sb float64
	for y := y0; y < y0+n; y++ {
		for x := x0; x < x0+n; x++ {
			i := y*isWork + x
			sr += float64(ps.r[i])
			sg += float64(ps.g[i])
			sb += float64(ps.b[i])
		}
	}
	k := float64(n * n)
	return lab(sr/k, sg/k, sb/k)
}

// hsv converts RGB in [0, 1] to hue in [0, 1) (fraction of a turn),
// saturation and value in [0, 1].
func hsv(r, g, b float32) (h, s, v float32) {
	mx, mn := max(r, g, b), min(r, g, b)
	v = mx
	d := mx - mn
	if mx > 0 {
		s = d / mx
	}
	if d == 0 {
		return 0, s, v
	}
	switch mx {
	case r:
		h = (g - b) / d
		if h < 0 {
			h += 6
		}
	case g:
		h = (b-r)/d + 2
	default:
		h = (r-g)/d + 4
	}
	h /= 6
	if h >= 1 {
		h = 0
	}
	return h, s, v
}

// lab converts an sRGB colour in [0, 1] to CIELAB (D65), scaled by 1/100.
func lab(r, g, b float64) (float32, float32, float32) {
	lin := func(c float64) float64 {
		if c <= 0.04045 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	r, g, b = lin(r), lin(g), lin(b)
	x := (0.4124564*r + 0.3575761*g + 0.1804375*b) / 0.95047
	y := 0.2126729*r + 0.7151522*g + 0.0721750*b
	z := (0.0193339*r + 0.1191920*g + 0.9503041*b) / 1.08883
	f := func(t float64) float64 {
		if t > 216.0/24389 {
			return math.Cbrt(t)
		}
		return (24389.0/27*t + 16) / 116
	}
	fx, fy, fz := f(x), f(y), f(z)
	return float32((116*fy - 16) / 100), float32(500 * (fx - fy) / 100), float32(200 * (fy - fz) / 100)
}

// groupNorm applies the signed square root to every value, L2-normalises
// each group and scales all by 1/√(number of groups).
func groupNorm(groups ...[]float32) {
	scale := float32(1 / math.Sqrt(float64(len(groups))))
	for _, g := range groups {
		for i, v := range g {
			if v < 0 {
				g[i] = -float32(math.Sqrt(float64(-v)))
			} else {
				g[i] = float32(math.Sqrt(float64(v)))
			}
		}
		if normalize(g) {
			for i := range g {
				g[i] *= scale
			}
		}
	}
}

// project adds the signed random projection of raw to dst.
func project(dst, raw []float32, key uint64) {
	for i, v := range raw {
		if v != 0 {
			addSigned(dst, splitmix64(key^uint64(i)*0xd1b54a32d192ed03), v)
		}
	}
}
