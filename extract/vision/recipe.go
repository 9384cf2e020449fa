package vision

import (
	"fmt"
	"image"
	"strconv"
	"strings"
)

// ResizeMode says how a recipe fits an image into its Size×Size input.
type ResizeMode int

const (
	// ShortSideCrop resizes the short side to Size (the long side to
	// int(Size × long / short), as Hugging Face's image processors and
	// torchvision's Resize(int) compute it), then takes the centre
	// Size×Size crop (offsets (w−Size)/2 and (h−Size)/2, rounded down).
	ShortSideCrop ResizeMode = iota + 1
	// Squash resizes to Size×Size without keeping the aspect ratio
	// (torchvision's Resize((Size, Size))).
	Squash
)

// Recipe is an image preprocessing recipe: resize, crop, scale to [0, 1],
// subtract Mean and divide by Std per channel, CHW float32 RGB.
type Recipe struct {
	Name   string // "clip", "pmmrec", ...
	Size   int    // output side
	Mode   ResizeMode
	Filter Filter
	Mean   [3]float32
	Std    [3]float32
	// MaxPixels bounds decoded images (0: DefaultMaxPixels).
	MaxPixels int
}

// CLIP returns the recipe of OpenAI CLIP ViT-B/32 (and of Hugging Face's
// CLIPImageProcessor): bicubic resize of the short side to 224, centre
// crop 224×224, CLIP's mean and std.
func CLIP() Recipe {
	return Recipe{
		Name: "clip", Size: 224, Mode: ShortSideCrop, Filter: Bicubic,
		Mean: [3]float32{0.48145466, 0.4578275, 0.40821073},
		Std:  [3]float32{0.26862954, 0.26130258, 0.27577711},
	}
}

// PMMRec returns the recipe of PMMRec's image loader
// (data_utils/tools.py): torchvision Resize((224, 224)) on a PIL image,
// which is Pillow's bilinear (antialiased) resize to 224×224 ignoring the
// aspect ratio, then ToTensor and Normalize(mean = std = 0.5).
func PMMRec() Recipe {
	return Recipe{
		Name: "pmmrec", Size: 224, Mode: Squash, Filter: Bilinear,
		Mean: [3]float32{0.5, 0.5, 0.5},
		Std:  [3]float32{0.5, 0.5, 0.5},
	}
}

// Len is the number of float32 values of one preprocessed image
// (3 × Size × Size).
func (r Recipe) Len() int { return 3 * r.Size * r.Size }

// Shape is the tensor shape of one preprocessed image: [3, Size, Size].
func (r Recipe) Shape() []int64 { return []int64{3, int64(r.Size), int64(r.Size)} }

// String describes the recipe for the feature files' preprocess metadata,
// e.g. "clip: rgb; resize short side to 224 (bicubic, pillow); center crop
// 224x224; scale 1/255; mean [...]; std [...]; chw float32".
func (r Recipe) String() string {
	f := func(v [3]float32) string {
		return "[" + strconv.FormatFloat(float64(v[0]), 'g', -1, 32) + "," +
			strconv.FormatFloat(float64(v[1]), 'g', -1, 32) + "," +
			strconv.FormatFloat(float64(v[2]), 'g', -1, 32) + "]"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: rgb; ", r.Name)
	switch r.Mode {
	case ShortSideCrop:
		fmt.Fprintf(&b, "resize short side to %d (%s, pillow); center crop %dx%d; ", r.Size, r.Filter, r.Size, r.Size)
	case Squash:
		fmt.Fprintf(&b, "resize to %dx%d ignoring aspect (%s, pillow); ", r.Size, r.Size, r.Filter)
	}
	fmt.Fprintf(&b, "scale 1/255; mean %s; std %s; chw float32", f(r.Mean), f(r.Std))
	return b.String()
}

// Geometry returns the size an image of w×h pixels is resized to and the
// crop taken from it.
func (r Recipe) Geometry(w, h int) (rw, rh int, crop image.Rectangle) {
	s := r.Size
	switch r.Mode {
	case Squash:
		return s, s, image.Rect(0, 0, s, s)
	default:
		if w <= h {
			rw, rh = s, int(float64(s)*float64(h)/float64(w))
		} else {
			rw, rh = int(float64(s)*float64(w)/float64(h)), s
		}
		// Both sides are at least s, so the crop lies inside.
		left, top := (rw-s)/2, (rh-s)/2
		return rw, rh, image.Rect(left, top, left+s, top+s)
	}
}

// Resample applies the recipe's resize and crop to an RGB image and returns
// the Size×Size RGB result.
func (r Recipe) Resample(src *RGB) *RGB {
	return r.ResampleImage(src)
}

// ResampleImage is Resample on any image (converted to RGB row by row, as
// ToRGB would).
func (r Recipe) ResampleImage(img image.Image) *RGB {
	b := img.Bounds()
	rw, rh, crop := r.Geometry(b.Dx(), b.Dy())
	return ResizeImage(img, rw, rh, crop, r.Filter)
}

// lut returns the normalised value of every byte value per channel:
// (float32(v)/255 − mean) / std in float32 arithmetic, as numpy and torch
// compute it.
func (r Recipe) lut() *[3][256]float32 {
	var t [3][256]float32
	for c := range 3 {
		for v := range 256 {
			t[c][v] = (float32(v)/255 - r.Mean[c]) / r.Std[c]
		}
	}
	return &t
}

// Normalize writes img (Size×Size) into dst as CHW float32 with the
// recipe's mean and std; dst must hold Len() values.
func (r Recipe) Normalize(img *RGB, dst []float32) {
	t := r.lut()
	n := img.W * img.H
	dst = dst[:3*n]
	rp, gp, bp := dst[:n], dst[n:2*n], dst[2*n:3*n]
	for i := range n {
		p := img.Pix[3*i : 3*i+3 : 3*i+3]
		rp[i] = t[0][p[0]]
		gp[i] = t[1][p[1]]
		bp[i] = t[2][p[2]]
	}
}

// Preprocess decodes an encoded image and applies the recipe: it returns
// 3 × Size × Size float32 values, channel-major (CHW).
func (r Recipe) Preprocess(data []byte) ([]float32, error) {
	dst := make([]float32, r.Len())
	if err := r.PreprocessInto(data, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// PreprocessInto is Preprocess writing into dst (Len() values), for
// callers that fill a batch tensor in place.
func (r Recipe) PreprocessInto(data []byte, dst []float32) error {
	if len(dst) < r.Len() {
		return fmt.Errorf("vision: %s: destination holds %d values, want %d", r.Name, len(dst), r.Len())
	}
	img, err := DecodeImage(data, r.MaxPixels)
	if err != nil {
		return err
	}
	r.Normalize(r.ResampleImage(img), dst)
	return nil
}
