package synth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// genRatings returns the whole CSV of cfg.
func genRatings(t testing.TB, cfg RatingsConfig) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := RatingsCSV(context.Background(), &buf, cfg); err != nil {
		t.Fatalf("RatingsCSV: %v", err)
	}
	return buf.Bytes()
}

func TestRatingsCSVFormat(t *testing.T) {
	lo := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(2018, 12, 31, 0, 0, 0, 0, time.UTC).Unix()
	tests := []struct {
		name string
		cfg  RatingsConfig
	}{
		{"one row", RatingsConfig{Rows: 1, Users: 1, Items: 1}},
		{"partial block", RatingsConfig{Rows: ratingsBlockRows + 17, Users: 500, Items: 300}},
		{"exact blocks", RatingsConfig{Rows: 3 * ratingsBlockRows, Users: 2000, Items: 100, Workers: 2}},
		{"uniform users", RatingsConfig{Rows: 5000, Users: 50, Items: 40, UserSkew: 1}},
		{"many workers", RatingsConfig{Rows: 100_000, Users: 10_000, Items: 1000, Workers: 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := genRatings(t, tc.cfg)
			if len(data) == 0 || data[len(data)-1] != '\n' {
				t.Fatalf("output does not end with a newline")
			}
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			if int64(len(lines)) != tc.cfg.Rows {
				t.Fatalf("got %d lines, want %d", len(lines), tc.cfg.Rows)
			}
			users, items := map[string]bool{}, map[string]bool{}
			stars := map[string]int{}
			for i, line := range lines {
				f := strings.Split(line, ",")
				if len(f) != 4 {
					t.Fatalf("line %d %q: %d fields, want 4", i+1, line, len(f))
				}
				if len(f[0]) != 10 || len(f[1]) != 10 || !reASIN.MatchString(f[0]) || !reASIN.MatchString(f[1]) {
					t.Fatalf("line %d %q: ids must be 10 upper-case alphanumerics", i+1, line)
				}
				if f[0][0] != 'B' || f[1][0] != 'A' {
					t.Fatalf("line %d %q: item ids start with B, user ids with A", i+1, line)
				}
				r, err := strconv.ParseFloat(f[2], 64)
				if err != nil || r < 1 || r > 5 || len(f[2]) != 3 {
					t.Fatalf("line %d %q: rating %q", i+1, line, f[2])
				}
				ts, err := strconv.ParseInt(f[3], 10, 64)
				if err != nil || ts < lo || ts > hi || ts%86400 != 0 {
					t.Fatalf("line %d %q: timestamp %q", i+1, line, f[3])
				}
				items[f[0]], users[f[1]] = true, true
				stars[f[2]]++
			}
			if len(items) > tc.cfg.Items || len(users) > tc.cfg.Users {
				t.Errorf("%d distinct items (max %d), %d users (max %d)", len(items), tc.cfg.Items, len(users), tc.cfg.Users)
			}
			if tc.cfg.Rows >= 5000 {
				if len(stars) != 5 {
					t.Errorf("ratings used: %v, want all of 1.0–5.0", stars)
				}
				if stars["5.0"] < stars["4.0"] || stars["4.0"] < stars["2.0"] {
					t.Errorf("rating distribution %v not skewed towards 5", stars)
				}
				if len(users) < tc.cfg.Users/4 {
					t.Errorf("only %d of %d users occur", len(users), tc.cfg.Users)
				}
			}
		})
	}
}

func TestRatingsCSVDeterminism(t *testing.T) {
	base := RatingsConfig{Seed: 42, Rows: 150_000, Users: 20_000, Items: 3000, Workers: 1}
	want := genRatings(t, base)
	tests := []struct {
		name   string
		mutate func(*RatingsConfig)
		same   bool
	}{
		{"same config", func(*RatingsConfig) {}, true},
		{"more workers", func(c *RatingsConfig) { c.Workers = 3 }, true},
		{"other seed", func(c *RatingsConfig) { c.Seed = 43 }, false},
		{"other skew", func(c *RatingsConfig) { c.ZipfS = 1.3 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			got := genRatings(t, cfg)
			if eq := bytes.Equal(got, want); eq != tc.same {
				t.Errorf("output identical = %v, want %v", eq, tc.same)
			}
		})
	}
	// Fewer rows give a prefix of the same stream.
	short := base
	short.Rows = 40_000
	if got := genRatings(t, short); !bytes.HasPrefix(want, got) {
		t.Errorf("first %d rows differ from the longer run's", short.Rows)
	}
}

func TestRatingsCSVSkew(t *testing.T) {
	cfg := RatingsConfig{Seed: 9, Rows: 200_000, Users: 50_000, Items: 10_000}
	data := genRatings(t, cfg)
	counts := map[string]int{}
	userCounts := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	rows := 0
	for sc.Scan() {
		line := sc.Text()
		counts[line[:10]]++
		userCounts[line[11:21]]++
		rows++
	}
	top := topShare(counts, cfg.Items/100, rows)
	t.Logf("top 1%% of items hold %.3f of rows; %d distinct items", top, len(counts))
	if top <= 0.10 {
		t.Errorf("top 1%% of items hold %.3f of rows, want > 0.10", top)
	}
	// Users are only mildly skewed: the top 1 % hold far less than items'.
	if u := topShare(userCounts, cfg.Users/100, rows); u >= top || u > 0.10 {
		t.Errorf("top 1%% of users hold %.3f of rows (items %.3f), want mild skew", u, top)
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for _, idx := range []int{0, 1, 2, 35, 36, 1295, 1296, 199_999, 999_999, maxIndexedID - 1} {
		for _, id := range []string{ItemID(idx), UserID(idx)} {
			if len(id) != 10 || !reASIN.MatchString(id) {
				t.Errorf("id %q of index %d", id, idx)
			}
			if seen[id] {
				t.Errorf("id %q repeated", id)
			}
			seen[id] = true
		}
	}
	// Injective over a dense range.
	ids := make([]string, 300_000)
	for i := range ids {
		ids[i] = ItemID(i)
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != len(ids) {
		t.Errorf("ItemID is not injective on [0, 300000)")
	}
}

func TestRatingsCSVConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  RatingsConfig
	}{
		{"negative rows", RatingsConfig{Rows: -1}},
		{"negative users", RatingsConfig{Users: -5}},
		{"too many items", RatingsConfig{Items: maxIndexedID + 1}},
		{"zipf exponent 1", RatingsConfig{ZipfS: 1}},
		{"zipf offset below 1", RatingsConfig{ZipfV: 0.5}},
		{"negative skew", RatingsConfig{UserSkew: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			err := RatingsCSV(context.Background(), &buf, tc.cfg)
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes for an invalid config", buf.Len())
			}
		})
	}
}

// failingWriter fails after accepting limit bytes.
type failingWriter struct{ n, limit int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		return 0, errDiskFull
	}
	w.n += len(p)
	return len(p), nil
}

func TestRatingsCSVWriteError(t *testing.T) {
	w := &failingWriter{limit: 3 << 20}
	err := RatingsCSV(context.Background(), w, RatingsConfig{Rows: 1_000_000, Users: 1000, Items: 1000})
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("got %v, want the writer's error", err)
	}
}

// cancelWriter cancels a context on its first write.
type cancelWriter struct {
	cancel context.CancelFunc
	writes int
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.writes++
	w.cancel()
	return len(p), nil
}

func TestRatingsCSVCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelWriter{cancel: cancel}
	err := RatingsCSV(ctx, w, RatingsConfig{Rows: 100 * ratingsBlockRows, Users: 1000, Items: 1000})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	if w.writes != 1 {
		t.Errorf("%d blocks written after cancellation", w.writes-1)
	}
}

func BenchmarkRatingsCSV(b *testing.B) {
	for _, workers := range []int{1, 0} {
		name := "workers=" + strconv.Itoa(workers)
		if workers == 0 {
			name = "workers=GOMAXPROCS"
		}
		b.Run(name, func(b *testing.B) {
			const rows = 1_000_000
			cfg := RatingsConfig{Seed: 1, Rows: rows, Users: DefaultRatingsUsers, Items: DefaultRatingsItems, Workers: workers}
			bw := bufio.NewWriterSize(io.Discard, 1<<16)
			var bytesOut int64
			cw := &countWriter{w: bw}
			b.ResetTimer()
			for b.Loop() {
				if err := RatingsCSV(context.Background(), cw, cfg); err != nil {
					b.Fatal(err)
				}
			}
			if err := bw.Flush(); err != nil {
				b.Fatal(err)
			}
			bytesOut = cw.n
			b.SetBytes(bytesOut / int64(b.N))
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Mrows/s")
		})
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func TestAliasZipf(t *testing.T) {
	tests := []struct {
		name string
		w    []float64
	}{
		{"single", []float64{3}},
		{"uniform", []float64{1, 1, 1, 1}},
		{"skewed", []float64{5, 1, 3, 0.5, 0.5, 0}},
		{"zipf", func() []float64 {
			w := make([]float64, 50)
			for k := range w {
				w[k] = math.Pow(20+float64(k), -1.1)
			}
			return w
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAliasZipf(tc.w)
			r := newRand(1, 99, 0)
			const n = 400_000
			counts := make([]int, len(tc.w))
			for range n {
				counts[a.sample(r.Uint64())]++
			}
			total := 0.0
			for _, x := range tc.w {
				total += x
			}
			for i, x := range tc.w {
				want := x / total
				got := float64(counts[i]) / n
				if math.Abs(got-want) > 0.004 {
					t.Errorf("index %d: frequency %.4f, want %.4f", i, got, want)
				}
			}
		})
	}
}

func TestRatingsBlockRejectionZipf(t *testing.T) {
	// Item counts above maxAliasItems sample with math/rand/v2's Zipf;
	// exercise that path on a small table.
	cfg, err := RatingsConfig{Seed: 3, Rows: 50_000, Users: 1000, Items: 2000}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	g := newRatingsGen(cfg)
	g.alias = nil
	data := ratingsBlock(nil, g, 0, 50_000)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 50_000 {
		t.Fatalf("got %d lines, want 50000", len(lines))
	}
	counts := map[string]int{}
	for _, l := range lines {
		if len(l) != 36 || strings.Count(l, ",") != 3 {
			t.Fatalf("malformed line %q", l)
		}
		counts[l[:10]]++
	}
	if top := topShare(counts, 20, len(lines)); top <= 0.10 {
		t.Errorf("top 1%% of items hold %.3f of rows, want > 0.10", top)
	}
}
