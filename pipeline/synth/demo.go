package synth

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of [DemoConfig].
const (
	DefaultDemoCategory        = "Demo_Products"
	DefaultDemoUsers           = 600
	DefaultDemoItems           = 400
	DefaultDemoCategories      = 6
	DefaultDemoMeanInteraction = 20.0
	DefaultDemoInCategoryShare = 0.8
	DefaultImageBaseURL        = "http://images.local/img/"
)

// Fixed shares of the demo's deliberate defects and variants.
const (
	missingMetaShare  = 0.02 // items with no metadata line
	missingImageShare = 0.03 // items with metadata but no image URL
	pngShare          = 0.03 // images written as PNG instead of JPEG
	duplicateShare    = 0.01 // review lines written twice
	verifiedShare     = 0.85
	voteShare         = 0.15
	emptyPriceShare   = 0.15
	minInteractions   = 5
	popularityExp     = 0.9 // Zipf-like exponent of item popularity within a category
	demoPlatform      = "Demo Products"
)

// The demo's reviews fall on the demoDays days from 2014-01-01 to
// 2018-12-31 (UTC midnight, as in the published files).
const (
	demoStartUnix = 1388534400 // 2014-01-01T00:00:00Z
	demoDays      = 1826
	secondsPerDay = 86400
)

// DemoConfig configures [Amazon2018Demo]. Zero fields take the defaults.
type DemoConfig struct {
	// Seed selects the dataset; the same config always gives the same bytes.
	Seed uint64
	// Category names the files: <Category>.json.gz and
	// meta_<Category>.json.gz (default "Demo_Products").
	Category string
	// Users is the number of reviewers (default 600).
	Users int
	// Items is the number of items, including those without metadata
	// (default 400). It must be at least Categories.
	Items int
	// Categories is the number of hidden categories (default 6).
	Categories int
	// MeanInteractions is the mean number of reviews per user (default 20,
	// at least 5 per user).
	MeanInteractions float64
	// InCategoryShare is the share of a user's reviews drawn from the
	// user's preferred hidden categories (default 0.8; 1 means all).
	InCategoryShare float64
	// ImageBaseURL prefixes the image file names in the metadata
	// (default "http://images.local/img/"); a missing trailing slash is added.
	ImageBaseURL string
	// Workers bounds the goroutines drawing images (default GOMAXPROCS).
	// The output does not depend on it.
	Workers int
}

// withDefaults fills zero fields and validates the result.
func (c DemoConfig) withDefaults() (DemoConfig, error) {
	if c.Category == "" {
		c.Category = DefaultDemoCategory
	}
	if c.Users == 0 {
		c.Users = DefaultDemoUsers
	}
	if c.Items == 0 {
		c.Items = DefaultDemoItems
	}
	if c.Categories == 0 {
		c.Categories = DefaultDemoCategories
	}
	if c.MeanInteractions == 0 {
		c.MeanInteractions = DefaultDemoMeanInteraction
	}
	if c.InCategoryShare == 0 {
		c.InCategoryShare = DefaultDemoInCategoryShare
	}
	if c.ImageBaseURL == "" {
		c.ImageBaseURL = DefaultImageBaseURL
	}
	if !strings.HasSuffix(c.ImageBaseURL, "/") {
		c.ImageBaseURL += "/"
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case strings.ContainsAny(c.Category, `/\`) || c.Category == "." || c.Category == "..":
		return c, fmt.Errorf("%w: category %q is not a plain file name", ErrInvalidConfig, c.Category)
	case c.Users < 0:
		return c, fmt.Errorf("%w: users = %d, want > 0", ErrInvalidConfig, c.Users)
	case c.Categories < 0:
		return c, fmt.Errorf("%w: categories = %d, want > 0", ErrInvalidConfig, c.Categories)
	case c.Items < c.Categories:
		return c, fmt.Errorf("%w: items = %d, want at least categories = %d", ErrInvalidConfig, c.Items, c.Categories)
	case c.Items > 10_000_000 || c.Users > 10_000_000:
		return c, fmt.Errorf("%w: demo limited to 10M users and items (got %d users, %d items)", ErrInvalidConfig, c.Users, c.Items)
	case math.IsNaN(c.MeanInteractions) || c.MeanInteractions < minInteractions:
		return c, fmt.Errorf("%w: mean interactions = %v, want >= %d", ErrInvalidConfig, c.MeanInteractions, minInteractions)
	case math.IsNaN(c.InCategoryShare) || c.InCategoryShare < 0 || c.InCategoryShare > 1:
		return c, fmt.Errorf("%w: in-category share = %v, want in [0, 1]", ErrInvalidConfig, c.InCategoryShare)
	}
	return c, nil
}

// DemoInfo describes what [Amazon2018Demo] wrote.
type DemoInfo struct {
	// Dir is the output directory.
	Dir string
	// ReviewsFile is <Dir>/<Category>.json.gz.
	ReviewsFile string
	// MetaFile is <Dir>/meta_<Category>.json.gz.
	MetaFile string
	// HiddenFile is <Dir>/hidden_categories.json, the ASIN → hidden
	// category map as a JSON object.
	HiddenFile string
	// ImageDir is <Dir>/images.
	ImageDir string
	// ImageFiles lists the image files written (<ImageDir>/<asin>.jpg or .png),
	// in metadata order.
	ImageFiles []string
	// Files lists every file written, in the order above.
	Files []string
	// Users, Items and Reviews count reviewers, items (with metadata or
	// reviews) and review lines (duplicates included).
	Users, Items, Reviews int
	// Duplicates counts review lines that repeat an earlier line exactly.
	Duplicates int
	// ItemsWithoutMeta lists the ASINs that have reviews but no metadata line.
	ItemsWithoutMeta []string
	// ItemsWithoutImage lists the ASINs whose metadata has no image URL.
	ItemsWithoutImage []string
	// ItemsWithEmptyTitle lists the ASINs whose metadata title is "".
	ItemsWithEmptyTitle []string
	// CategoryNames names the hidden categories by index.
	CategoryNames []string
	// HiddenCategory maps every ASIN to its hidden category in
	// [0, len(CategoryNames)).
	HiddenCategory map[string]int
}

// review2018 is one line of an Amazon 2018 review file, keys in the
// order of the published files.
type review2018 struct {
	Overall        stars  `json:"overall"`
	Vote           string `json:"vote,omitempty"`
	Verified       bool   `json:"verified"`
	ReviewTime     string `json:"reviewTime"`
	ReviewerID     string `json:"reviewerID"`
	ASIN           string `json:"asin"`
	ReviewerName   string `json:"reviewerName"`
	ReviewText     string `json:"reviewText"`
	Summary        string `json:"summary"`
	UnixReviewTime int64  `json:"unixReviewTime"`
}

// stars is a star rating, written with one decimal ("5.0") as in the
// published files.
type stars float64

// MarshalJSON implements json.Marshaler.
func (s stars) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(s), 'f', 1, 64), nil
}

// meta2018 is one line of an Amazon 2018 metadata file.
type meta2018 struct {
	Category        []string `json:"category"`
	Description     []string `json:"description"`
	Title           string   `json:"title"`
	AlsoBuy         []string `json:"also_buy"`
	Brand           string   `json:"brand"`
	Feature         []string `json:"feature"`
	MainCat         string   `json:"main_cat"`
	Price           string   `json:"price"`
	ASIN            string   `json:"asin"`
	ImageURL        []string `json:"imageURL"`
	ImageURLHighRes []string `json:"imageURLHighRes"`
}

// demoItem is the generator's view of one item.
type demoItem struct {
	asin    string
	cat     int
	noun    string
	meta    meta2018
	quality float64
	noMeta  bool
	noImage bool
	png     bool
	reviews int
}

// demoReview is one review before serialisation.
type demoReview struct {
	user   int
	item   int
	day    int
	rating int
}

// Amazon2018Demo writes a small synthetic dataset in the Amazon Review Data
// 2018 format into dir (created if needed; files of the same names are
// overwritten):
//
//   - <Category>.json.gz: reviews as JSON lines with the 2018 keys overall,
//     verified, reviewTime, reviewerID, asin, reviewerName, reviewText,
//     summary, unixReviewTime (and vote on some lines), sorted by ASIN and
//     time; about 1 % of the lines are exact duplicates.
//   - meta_<Category>.json.gz: metadata lines with asin, title, description,
//     category, brand, price, imageURL, imageURLHighRes (plus also_buy,
//     feature, main_cat); about 2 % of the reviewed items have no line, about
//     3 % have no image URL, one or two have an empty title.
//   - images/<asin>.jpg (a few .png): one procedurally drawn image per image
//     URL, 128–256 × 128–192 pixels.
//   - hidden_categories.json: ASIN → hidden category.
//
// Every item belongs to one hidden category that sets its vocabulary, brand,
// price range, image palette and shape family; each user prefers one or two
// categories and draws InCategoryShare of their reviews from them, with
// Zipf-like popularity within a category and strictly increasing review
// days over 2014–2018. The output depends only on cfg.
func Amazon2018Demo(ctx context.Context, dir string, cfg DemoConfig) (*DemoInfo, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("synth: demo: %w", err)
	}
	g := &demoGen{cfg: cfg, vocab: buildVocab(cfg.Seed, cfg.Categories)}
	g.makeItems()
	if err := g.makeReviews(ctx); err != nil {
		return nil, err
	}
	g.markDefects()

	info := &DemoInfo{
		Dir:            dir,
		ReviewsFile:    filepath.Join(dir, cfg.Category+".json.gz"),
		MetaFile:       filepath.Join(dir, "meta_"+cfg.Category+".json.gz"),
		HiddenFile:     filepath.Join(dir, "hidden_categories.json"),
		ImageDir:       filepath.Join(dir, "images"),
		Users:          cfg.Users,
		Items:          len(g.items),
		HiddenCategory: make(map[string]int, len(g.items)),
	}
	for _, v := range g.vocab {
		info.CategoryNames = append(info.CategoryNames, v.name)
	}
	for _, it := range g.items {
		info.HiddenCategory[it.asin] = it.cat
		switch {
		case it.noMeta:
			info.ItemsWithoutMeta = append(info.ItemsWithoutMeta, it.asin)
		case it.noImage:
			info.ItemsWithoutImage = append(info.ItemsWithoutImage, it.asin)
		}
		if !it.noMeta && it.meta.Title == "" {
			info.ItemsWithEmptyTitle = append(info.ItemsWithEmptyTitle, it.asin)
		}
	}
	if err := os.MkdirAll(info.ImageDir, 0o755); err != nil {
		return nil, fmt.Errorf("synth: demo: %w", err)
	}
	if info.Reviews, info.Duplicates, err = g.writeReviews(ctx, info.ReviewsFile); err != nil {
		return nil, err
	}
	if err := g.writeMeta(ctx, info.MetaFile); err != nil {
		return nil, err
	}
	if err := writeJSONFile(info.HiddenFile, info.HiddenCategory); err != nil {
		return nil, err
	}
	if info.ImageFiles, err = g.writeImages(ctx, info.ImageDir); err != nil {
		return nil, err
	}
	info.Files = append([]string{info.ReviewsFile, info.MetaFile, info.HiddenFile}, info.ImageFiles...)
	return info, nil
}

// demoGen holds the state of one demo generation.
type demoGen struct {
	cfg      DemoConfig
	vocab    []categoryVocab
	items    []demoItem
	catItems [][]int     // hidden category → item indices, most popular first
	catCum   [][]float64 // cumulative popularity weights of catItems
	reviews  []demoReview
	users    []demoUser
}

// demoUser is one reviewer.
type demoUser struct {
	id   string
	name string
	bias float64
}

// makeItems draws the items, their hidden categories and their metadata.
func (g *demoGen) makeItems() {
	r := newRand(g.cfg.Seed, streamItems, 0)
	n, nc := g.cfg.Items, g.cfg.Categories
	asins := uniqueIDs(r, n, "B0", 8)
	cats := make([]int, n)
	for i := range cats {
		cats[i] = i % nc // balanced category sizes
	}
	r.Shuffle(n, func(i, j int) { cats[i], cats[j] = cats[j], cats[i] })

	g.items = make([]demoItem, n)
	g.catItems = make([][]int, nc)
	for i := range g.items {
		c := cats[i]
		v := &g.vocab[c]
		it := &g.items[i]
		it.asin, it.cat = asins[i], c
		it.noun = pick(r, v.nouns)
		it.quality = r.NormFloat64() * 0.4
		brand := pick(r, v.brands)
		m := &it.meta
		m.ASIN = it.asin
		m.Title = v.title(r, brand, it.noun)
		m.Brand = brand
		m.Category = []string{demoPlatform, v.name, pick(r, v.subcats)}
		m.MainCat = demoPlatform
		m.Description = []string{v.paragraph(r, it.noun, 2+r.IntN(2))}
		if r.IntN(4) == 0 {
			m.Description = append(m.Description, v.paragraph(r, it.noun, 1))
		}
		m.Feature = make([]string, 2+r.IntN(3))
		for k := range m.Feature {
			m.Feature[k] = capitalize(v.categoryWord(r)) + " " + pick(r, v.nouns) + " for " + pick(r, fillerWords[:]) + " use"
		}
		if r.Float64() >= emptyPriceShare {
			cents := int((v.priceLo + (v.priceHi-v.priceLo)*r.Float64()) * 100)
			cents = cents/100*100 + pick(r, []int{99, 95, 49, 0})
			m.Price = "$" + strconv.Itoa(cents/100) + "." + fmt.Sprintf("%02d", cents%100)
		}
		m.AlsoBuy = []string{}
		g.catItems[c] = append(g.catItems[c], i)
	}
	// Popularity: the order of catItems is random w.r.t. the ASINs (cats was
	// shuffled), so the k-th item of a category gets weight (k+1)^-exp.
	g.catCum = make([][]float64, nc)
	for c, list := range g.catItems {
		cum := make([]float64, len(list))
		total := 0.0
		for k := range list {
			total += math.Pow(float64(k+1), -popularityExp)
			cum[k] = total
		}
		g.catCum[c] = cum
	}
	// also_buy: a few popular items of the same category.
	for i := range g.items {
		it := &g.items[i]
		for range r.IntN(5) {
			j := g.popularItem(r, it.cat)
			if j != i && !slices.Contains(it.meta.AlsoBuy, g.items[j].asin) {
				it.meta.AlsoBuy = append(it.meta.AlsoBuy, g.items[j].asin)
			}
		}
	}
}

// popularItem draws an item of category c by popularity.
func (g *demoGen) popularItem(r *rand.Rand, c int) int {
	cum := g.catCum[c]
	u := r.Float64() * cum[len(cum)-1]
	k, _ := slices.BinarySearch(cum, u)
	return g.catItems[c][min(k, len(cum)-1)]
}

// makeReviews draws users, their preferences and their reviews.
func (g *demoGen) makeReviews(ctx context.Context) error {
	r := newRand(g.cfg.Seed, streamUsers, 0)
	ids := uniqueIDs(r, g.cfg.Users, "A", 13)
	totalDays := demoDays
	maxPerUser := min(g.cfg.Items, totalDays)
	nc := g.cfg.Categories
	g.users = make([]demoUser, g.cfg.Users)
	chosen := make(map[int]struct{})
	for u := range g.users {
		if u%64 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("synth: demo: %w", err)
			}
		}
		usr := &g.users[u]
		usr.id, usr.name, usr.bias = ids[u], reviewerName(r), r.NormFloat64()*0.3
		prefs := []int{r.IntN(nc)}
		if nc > 1 && r.IntN(100) < 45 {
			p := r.IntN(nc - 1)
			if p >= prefs[0] {
				p++
			}
			prefs = append(prefs, p)
		}
		n := minInteractions + int(r.ExpFloat64()*(g.cfg.MeanInteractions-minInteractions)+0.5)
		n = min(n, maxPerUser)
		clear(chosen)
		picked := make([]int, 0, n)
		for range n {
			for try := 0; try < 50; try++ {
				c := r.IntN(nc)
				inPref := r.Float64() < g.cfg.InCategoryShare
				if inPref {
					c = prefs[r.IntN(len(prefs))]
				}
				it := g.popularItem(r, c)
				if try >= 20 { // category exhausted: any unused item of it
					it = g.catItems[c][r.IntN(len(g.catItems[c]))]
				}
				if _, dup := chosen[it]; dup {
					continue
				}
				chosen[it] = struct{}{}
				picked = append(picked, it)
				break
			}
		}
		// Distinct, increasing days in an active window of the user
		// (selection sampling keeps them sorted).
		n = len(picked)
		window := n + r.IntN(totalDays-n+1)
		start := r.IntN(totalDays - window + 1)
		need := n
		k := 0
		for d := 0; d < window && need > 0; d++ {
			if r.IntN(window-d) < need {
				it := picked[k]
				rating := g.rating(r, usr.bias, it, slices.Contains(prefs, g.items[it].cat))
				g.reviews = append(g.reviews, demoReview{user: u, item: it, day: start + d, rating: rating})
				g.items[it].reviews++
				need--
				k++
			}
		}
	}
	return nil
}

// rating draws a 1–5 star rating, mostly 4 or 5 as in the published data,
// higher for good items and for items of the user's preferred categories.
func (g *demoGen) rating(r *rand.Rand, bias float64, item int, inPref bool) int {
	if r.IntN(100) < 4 { // the occasional angry one-star review
		return 1
	}
	mu := 4.4 + g.items[item].quality + bias
	if !inPref {
		mu -= 0.5
	}
	x := int(math.Round(mu + r.NormFloat64()*0.9))
	return min(5, max(1, x))
}

// markDefects chooses the items without metadata, without image, with an
// empty title, and those whose image is a PNG.
func (g *demoGen) markDefects() {
	r := newRand(g.cfg.Seed, streamSelect, 0)
	n := len(g.items)
	order := r.Perm(n)
	count := func(share float64) int { return max(1, int(math.Round(share*float64(n)))) }

	// No metadata: only items that have reviews, so that they still exist.
	left := count(missingMetaShare)
	for _, i := range order {
		if left == 0 {
			break
		}
		if g.items[i].reviews > 0 {
			g.items[i].noMeta = true
			left--
		}
	}
	pickAmong := func(k int, ok func(*demoItem) bool, mark func(*demoItem)) {
		for _, i := range r.Perm(n) {
			if k == 0 {
				return
			}
			if it := &g.items[i]; ok(it) {
				mark(it)
				k--
			}
		}
	}
	hasMeta := func(it *demoItem) bool { return !it.noMeta }
	pickAmong(count(missingImageShare), hasMeta, func(it *demoItem) {
		it.noImage = true
	})
	emptyTitles := 1
	if n >= 100 {
		emptyTitles = 2
	}
	pickAmong(emptyTitles, hasMeta, func(it *demoItem) { it.meta.Title = "" })
	pickAmong(count(pngShare), func(it *demoItem) bool { return !it.noMeta && !it.noImage }, func(it *demoItem) { it.png = true })

	for i := range g.items {
		it := &g.items[i]
		it.meta.ImageURL, it.meta.ImageURLHighRes = []string{}, []string{}
		if !it.noImage {
			u := g.cfg.ImageBaseURL + it.asin + it.imageExt()
			it.meta.ImageURL = []string{u}
			it.meta.ImageURLHighRes = []string{u}
		}
	}
}

// imageExt is the extension of the item's image file.
func (it *demoItem) imageExt() string {
	if it.png {
		return ".png"
	}
	return ".jpg"
}

// writeReviews writes the review file and returns the number of lines and
// of duplicate lines.
func (g *demoGen) writeReviews(ctx context.Context, path string) (lines, dups int, err error) {
	r := newRand(g.cfg.Seed, streamText, 1<<20)
	// Each review's text is drawn before sorting, so that it is tied to the
	// review and not to its position in the file.
	type line struct {
		rec review2018
		dup bool
	}
	out := make([]line, 0, len(g.reviews)+len(g.reviews)/50+1)
	for _, rv := range g.reviews {
		it := &g.items[rv.item]
		usr := &g.users[rv.user]
		day := time.Unix(demoStartUnix+int64(rv.day)*secondsPerDay, 0).UTC()
		text, summary := g.vocab[it.cat].review(r, it.noun, rv.rating)
		rec := review2018{
			Overall:        stars(rv.rating),
			Verified:       r.Float64() < verifiedShare,
			ReviewTime:     day.Format("01 2, 2006"),
			ReviewerID:     usr.id,
			ASIN:           it.asin,
			ReviewerName:   usr.name,
			ReviewText:     text,
			Summary:        summary,
			UnixReviewTime: day.Unix(),
		}
		if r.Float64() < voteShare {
			rec.Vote = strconv.Itoa(2 + r.IntN(40))
		}
		out = append(out, line{rec: rec})
	}
	nd := 0
	if len(out) > 0 {
		nd = max(1, int(math.Round(duplicateShare*float64(len(out)))))
	}
	for _, k := range r.Perm(len(out))[:nd] {
		out = append(out, line{rec: out[k].rec, dup: true})
	}
	slices.SortStableFunc(out, func(a, b line) int {
		return cmp.Or(
			strings.Compare(a.rec.ASIN, b.rec.ASIN),
			cmp.Compare(a.rec.UnixReviewTime, b.rec.UnixReviewTime),
			strings.Compare(a.rec.ReviewerID, b.rec.ReviewerID),
			boolCompare(a.dup, b.dup),
		)
	})
	err = writeGzipJSONLines(ctx, path, len(out), func(i int) any { return &out[i].rec })
	return len(out), nd, err
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}

// writeMeta writes the metadata file, one line per item that has metadata.
func (g *demoGen) writeMeta(ctx context.Context, path string) error {
	metas := make([]*meta2018, 0, len(g.items))
	for i := range g.items {
		if !g.items[i].noMeta {
			metas = append(metas, &g.items[i].meta)
		}
	}
	return writeGzipJSONLines(ctx, path, len(metas), func(i int) any { return metas[i] })
}

// writeGzipJSONLines writes n JSON lines, the i-th being rec(i), to a gzip
// file at path.
func writeGzipJSONLines(ctx context.Context, path string, n int, rec func(int) any) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("synth: close %s: %w", path, cerr)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<16)
	zw := gzip.NewWriter(bw) // zero header ModTime keeps the bytes reproducible
	enc := json.NewEncoder(zw)
	enc.SetEscapeHTML(false)
	for i := range n {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("synth: write %s: %w", path, err)
			}
		}
		if err := enc.Encode(rec(i)); err != nil {
			return fmt.Errorf("synth: write %s: %w", path, err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("synth: write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("synth: write %s: %w", path, err)
	}
	return nil
}

// writeJSONFile writes v as JSON followed by a newline.
func writeJSONFile(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("synth: encode %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// writeImages draws and writes the image of every item that has an image
// URL, using up to cfg.Workers goroutines. Each image has its own random
// stream, so the bytes do not depend on scheduling.
func (g *demoGen) writeImages(ctx context.Context, dir string) ([]string, error) {
	var todo []int
	var paths []string
	for i := range g.items {
		if it := &g.items[i]; !it.noMeta && !it.noImage {
			todo = append(todo, i)
			paths = append(paths, filepath.Join(dir, it.asin+it.imageExt()))
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	errs := make([]error, g.cfg.Workers)
	var wg sync.WaitGroup
	for w := range g.cfg.Workers {
		wg.Go(func() {
			for k := range jobs {
				it := &g.items[todo[k]]
				img := drawItemImage(newRand(g.cfg.Seed, streamImages, uint64(todo[k])), it.cat, g.cfg.Categories)
				b, err := encodeImage(img, it.png)
				if err == nil {
					err = os.WriteFile(paths[k], b, 0o644)
				}
				if err != nil {
					errs[w] = fmt.Errorf("synth: image %s: %w", it.asin, err)
					cancel()
					return
				}
			}
		})
	}
	var ctxErr error
feed:
	for k := range todo {
		select {
		case jobs <- k:
		case <-ctx.Done():
			ctxErr = ctx.Err()
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if ctxErr != nil {
		return nil, fmt.Errorf("synth: demo images: %w", ctxErr)
	}
	return paths, nil
}
