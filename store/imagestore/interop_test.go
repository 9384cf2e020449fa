package imagestore

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	_ "image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

const python = "/usr/bin/python3"

// interopScript reads the store the way a Python user would: py-lmdb without
// locking, the two named databases, PIL to decode each image.
const interopScript = `
import hashlib, io, json, sys
import lmdb
from PIL import Image

env = lmdb.open(sys.argv[1], readonly=True, lock=False, max_dbs=2)
images = env.open_db(b"images", create=False)
ledger = env.open_db(b"ledger", create=False)
out = {"main": [], "images": {}, "ledger": {}}
with env.begin() as txn:
    out["main"] = [k.decode() for k, _ in txn.cursor()]
    for k, v in txn.cursor(db=images):
        im = Image.open(io.BytesIO(v))
        im.load()
        out["images"][k.decode("utf-8")] = {
            "w": im.size[0], "h": im.size[1], "format": im.format,
            "sha256": hashlib.sha256(v).hexdigest(), "bytes": len(v),
        }
    for k, v in txn.cursor(db=ledger):
        out["ledger"][k.decode("utf-8")] = json.loads(v.decode("utf-8"))
print(json.dumps(out))
`

func pythonWithLMDBAndPIL() bool {
	return exec.Command(python, "-c", "import lmdb, PIL").Run() == nil
}

type testImage struct {
	key    string
	format string // PIL's name
	w, h   int
	data   []byte
}

func makeTestImages(t *testing.T) []testImage {
	t.Helper()
	rgba := image.NewRGBA(image.Rect(0, 0, 37, 21))
	for y := range 21 {
		for x := range 37 {
			rgba.Set(x, y, color.RGBA{uint8(7 * x), uint8(11 * y), uint8(x * y), 255})
		}
	}
	gray := image.NewGray(image.Rect(0, 0, 5, 300))
	for y := range 300 {
		for x := range 5 {
			gray.SetGray(x, y, color.Gray{uint8(y)})
		}
	}
	ycc := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			ycc.Set(x, y, color.RGBA{uint8(4 * x), 128, uint8(5 * y), 255})
		}
	}
	enc := func(f func(*bytes.Buffer) error) []byte {
		var buf bytes.Buffer
		if err := f(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	return []testImage{
		{"B000ABCDEF", "PNG", 37, 21, enc(func(b *bytes.Buffer) error { return png.Encode(b, rgba) })},
		{"ключ/é✓ 1", "JPEG", 64, 48, enc(func(b *bytes.Buffer) error { return jpeg.Encode(b, ycc, &jpeg.Options{Quality: 90}) })},
		{"123", "PNG", 5, 300, enc(func(b *bytes.Buffer) error { return png.Encode(b, gray) })},
		{"gray-jpeg", "JPEG", 5, 300, enc(func(b *bytes.Buffer) error { return jpeg.Encode(b, gray, nil) })},
	}
}

// TestPythonReadsStore writes a store with real PNG and JPEG images and reads
// it with Python's lmdb and PIL.
func TestPythonReadsStore(t *testing.T) {
	if !pythonWithLMDBAndPIL() {
		if os.Getenv("MMPIPE_REQUIRE_PYTHON") == "1" {
			t.Fatalf("%s cannot import lmdb and PIL (apt-get install python3-lmdb python3-pil)", python)
		}
		t.Skipf("skipping the Python interop test: %s cannot import lmdb and PIL (apt-get install python3-lmdb python3-pil)", python)
	}
	dir := newDir(t)
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	imgs := makeTestImages(t)
	var b Batch
	for _, im := range imgs {
		b.PutImage(im.key, im.data, LedgerEntry{
			URL: "https://img.example/" + im.key, Width: im.w, Height: im.h,
			ContentType: "image/" + map[string]string{"PNG": "png", "JPEG": "jpeg"}[im.format],
			Extra:       map[string]json.RawMessage{"phash": json.RawMessage(`"c3a1"`)},
		})
	}
	b.PutLedger("dead-link", LedgerEntry{URL: "https://img.example/404", Status: StatusFailed, HTTPStatus: 404,
		ErrorClass: "http_404", Attempts: 3, Extra: map[string]json.RawMessage{"retry_after_s": json.RawMessage(`30`)}})
	commitT(t, s, &b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	script := filepath.Join(t.TempDir(), "read_store.py")
	if err := os.WriteFile(script, []byte(interopScript), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, script, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var got struct {
		Main   []string `json:"main"`
		Images map[string]struct {
			W, H   int
			Format string
			SHA256 string
			Bytes  int
		} `json:"images"`
		Ledger map[string]map[string]any `json:"ledger"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python printed %s: %v", out, err)
	}
	if !slices.Equal(got.Main, []string{"images", "ledger"}) {
		t.Errorf("python sees main database keys %q", got.Main)
	}
	if len(got.Images) != len(imgs) || len(got.Ledger) != len(imgs)+1 {
		t.Fatalf("python sees %d images and %d ledger entries, want %d and %d", len(got.Images), len(got.Ledger), len(imgs), len(imgs)+1)
	}
	for _, im := range imgs {
		p, ok := got.Images[im.key]
		if !ok {
			t.Errorf("python does not see image %q", im.key)
			continue
		}
		if p.W != im.w || p.H != im.h || p.Format != im.format || p.Bytes != len(im.data) || p.SHA256 != shaHex(im.data) {
			t.Errorf("%q: python decoded %+v, want %dx%d %s of %d bytes", im.key, p, im.w, im.h, im.format, len(im.data))
		}
		l := got.Ledger[im.key]
		if l["status"] != "ok" || l["sha256"] != p.SHA256 || l["width"] != float64(im.w) || l["phash"] != "c3a1" {
			t.Errorf("%q: python reads ledger %v", im.key, l)
		}
	}
	l := got.Ledger["dead-link"]
	if l["status"] != "failed" || l["http_status"] != float64(404) || l["retry_after_s"] != float64(30) || l["time"] == nil {
		t.Errorf("python reads the failure ledger as %v", l)
	}
}

const pythonWriterScript = `
import hashlib, io, json, sys
import lmdb
from PIL import Image

env = lmdb.open(sys.argv[1], max_dbs=2, map_size=1 << 24)
images = env.open_db(b"images")
ledger = env.open_db(b"ledger")
with env.begin(write=True) as txn:
    for i, (w, h, fmt) in enumerate([(10, 20, "PNG"), (33, 7, "JPEG"), (4, 4, "GIF")]):
        buf = io.BytesIO()
        Image.new("RGB", (w, h), (i * 40, 100, 200)).save(buf, format=fmt)
        v = buf.getvalue()
        key = ("py-%d-ü" % i).encode("utf-8")
        txn.put(key, v, db=images)
        txn.put(key, json.dumps({"status": "ok", "sha256": hashlib.sha256(v).hexdigest(), "bytes": len(v),
                                 "width": w, "height": h, "content_type": "image/" + fmt.lower(),
                                 "py_custom": {"a": [1, 2.5, None]}}).encode(), db=ledger)
env.close()
`

// TestGoReadsPythonStore reads (and updates) a store written by py-lmdb: the
// unknown ledger fields it wrote survive a read-modify-write in Go.
func TestGoReadsPythonStore(t *testing.T) {
	if !pythonWithLMDBAndPIL() {
		t.Skipf("skipping the Python interop test: %s cannot import lmdb and PIL (apt-get install python3-lmdb python3-pil)", python)
	}
	dir := newDir(t)
	script := filepath.Join(t.TempDir(), "write_store.py")
	if err := os.WriteFile(script, []byte(pythonWriterScript), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(python, script, dir).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	s := openT(t, dir, Options{})
	if n := checkConsistent(t, s); n != 3 {
		t.Fatalf("%d images, want 3", n)
	}
	sizes := []image.Point{{10, 20}, {33, 7}, {4, 4}}
	for i, want := range sizes {
		key := "py-" + string(rune('0'+i)) + "-ü"
		img, ok, err := s.Get(key)
		if err != nil || !ok {
			t.Fatalf("Get(%q) = %v, %v", key, ok, err)
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(img))
		if err != nil || cfg.Width != want.X || cfg.Height != want.Y {
			t.Fatalf("%q: Go decodes %s %dx%d (%v), want %v", key, format, cfg.Width, cfg.Height, err, want)
		}
		e, _, err := s.Ledger(key)
		if err != nil || e.Width != want.X || string(e.Extra["py_custom"]) != `{"a": [1, 2.5, null]}` {
			t.Fatalf("%q: ledger %+v, extra %s, %v", key, e, e.Extra["py_custom"], err)
		}
		// Read-modify-write keeps the field Go does not know.
		e.Attempts = 5
		var b Batch
		b.PutLedger(key, e)
		commitT(t, s, &b)
		e2, _, _ := s.Ledger(key)
		if e2.Attempts != 5 || string(e2.Extra["py_custom"]) != `{"a":[1,2.5,null]}` {
			t.Fatalf("%q: after update %+v, extra %s", key, e2, e2.Extra["py_custom"])
		}
	}
}
