package crawl

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/mmpipe/mmpipe/store/imagestore"
)

// pyReadStore reads a crawled store as a Python user would (py-lmdb without
// locking, the two named databases, PIL to decode each image) and prints,
// per key, PIL's view of the image and the ledger entry.
const pyReadStore = `
import hashlib, io, json, sys
import lmdb
from PIL import Image

env = lmdb.open(sys.argv[1], readonly=True, lock=False, max_dbs=2)
images = env.open_db(b"images", create=False)
ledger = env.open_db(b"ledger", create=False)
out = {"images": {}, "ledger": {}}
with env.begin() as txn:
    for k, v in txn.cursor(db=images):
        im = Image.open(io.BytesIO(v))
        im.load()
        out["images"][k.decode("utf-8")] = {"w": im.size[0], "h": im.size[1], "format": im.format,
            "sha256": hashlib.sha256(v).hexdigest()}
    for k, v in txn.cursor(db=ledger):
        out["ledger"][k.decode("utf-8")] = json.loads(v.decode("utf-8"))
print(json.dumps(out))
`

// TestPythonReadsStore: Debian's python3-lmdb and python3-pil read what the
// crawler stored, images and ledger alike. Skipped with a message where
// they are absent, unless MMPIPE_REQUIRE_PYTHON=1.
func TestPythonReadsStore(t *testing.T) {
	t.Parallel()
	py := pythonPath()
	if out, err := exec.Command(py, "-c", "import lmdb, PIL").CombinedOutput(); err != nil {
		msg := "python interop: " + py + " cannot import lmdb and PIL (" + string(out) + "); install python3-lmdb and python3-pil or set MMPIPE_PYTHON"
		if os.Getenv("MMPIPE_REQUIRE_PYTHON") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	f := newFixtures(t)
	s := newTestServer(t)
	s.file("/a.jpg", "image/jpeg", f.jpeg)
	s.file("/b.png", "image/png", f.alpha)
	s.file("/c.gif", "image/gif", f.anim)
	s.file("/d.webp", "image/webp", webpLossy)
	s.file("/e.webp", "image/webp", webpAlpha)
	s.file("/big.jpg", "image/jpeg", f.big)
	dir := t.TempDir()
	o := testOptions(dir)
	o.Resize = 320
	o.URLsFile = writeURLs(t, dir, [][2]string{{"a", s.URL + "/a.jpg"}, {"b", s.URL + "/b.png"}, {"c", s.URL + "/c.gif"},
		{"d", s.URL + "/d.webp"}, {"e", s.URL + "/e.webp"}, {"big", s.URL + "/big.jpg"}, {"ünïcode-id", s.URL + "/a.jpg"},
		{"missing", s.URL + "/nope.jpg"}})
	run(t, o)
	ledger, images := storeContents(t, o.StoreDir())

	out, err := exec.Command(py, "-c", pyReadStore, o.StoreDir()).Output()
	if err != nil {
		t.Fatalf("python: %v", err)
	}
	var got struct {
		Images map[string]struct {
			W, H           int
			Format, SHA256 string
		}
		Ledger map[string]imagestore.LedgerEntry
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output: %v\n%s", err, out)
	}
	if len(got.Images) != len(images) || len(got.Ledger) != len(ledger) || len(images) != 7 {
		t.Fatalf("python sees %d images and %d ledger entries; Go %d and %d", len(got.Images), len(got.Ledger), len(images), len(ledger))
	}
	pilFormat := map[string]string{"image/jpeg": "JPEG", "image/png": "PNG", "image/gif": "GIF", "image/webp": "WEBP"}
	for k, e := range ledger {
		pe := got.Ledger[k]
		if pe.Status != e.Status || pe.SHA256 != e.SHA256 || pe.URL != e.URL || pe.ErrorClass != e.ErrorClass {
			t.Errorf("%s: python ledger %+v, Go %+v", k, pe, e)
		}
		if e.Status != imagestore.StatusOK {
			continue
		}
		pi, ok := got.Images[k]
		if !ok || pi.W != e.Width || pi.H != e.Height || pi.SHA256 != e.SHA256 || pi.Format != pilFormat[e.ContentType] {
			t.Errorf("%s: PIL sees %+v, ledger %d×%d %s %s", k, pi, e.Width, e.Height, e.ContentType, e.SHA256)
		}
	}
	if e := ledger["big"]; e.Width != 320 || e.Height != 240 {
		t.Errorf("big was not resized: %d×%d", e.Width, e.Height)
	}
}
