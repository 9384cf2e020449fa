package store

// Interoperability tests: the files this package writes must read the same in
// NumPy and in Apache Arrow's JavaScript implementation, and NumPy's files
// must read the same here. The tests skip, with a message, when python3 with
// numpy or node with apache-arrow is missing; MMPIPE_REQUIRE_INTEROP=1 turns
// those skips into failures.
//
// MMPIPE_PYTHON names the interpreter (default /usr/bin/python3).
// MMPIPE_NODE_MODULES names a node_modules folder holding apache-arrow
// (default: .tools/node/node_modules at the module root; install it with
// `mkdir -p .tools/node && cd .tools/node && npm install apache-arrow`).

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// skipInterop skips the test, or fails it when MMPIPE_REQUIRE_INTEROP=1.
func skipInterop(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("MMPIPE_REQUIRE_INTEROP") == "1" {
		t.Fatalf("MMPIPE_REQUIRE_INTEROP=1 but "+format, args...)
	}
	t.Skipf(format, args...)
}

// numpyPython returns a python interpreter that can import numpy, or skips.
func numpyPython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("MMPIPE_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if out, err := exec.Command(py, "-c", "import numpy").CombinedOutput(); err != nil {
		skipInterop(t, "numpy interop: %s -c 'import numpy' failed (%v: %s); install with `apt-get install python3-numpy` or set MMPIPE_PYTHON",
			py, err, strings.TrimSpace(string(out)))
	}
	return py
}

// runScript writes script to a file in dir and runs it with interp and args,
// returning stdout.
func runScript(t *testing.T, dir, name, script string, env []string, interp string, args ...string) []byte {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(interp, append([]string{p}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", interp, name, err, stderr.String())
	}
	return out
}

const numpyCheckScript = `
import json, sys
import numpy as np
out = {}
for p in sys.argv[1:]:
    a = np.load(p)
    out[p] = {"shape": list(a.shape), "dtype": a.dtype.str, "fortran": bool(a.flags.f_contiguous and not a.flags.c_contiguous),
              "hex": np.ascontiguousarray(a, dtype="<f4").tobytes().hex()}
json.dump(out, sys.stdout)
`

const numpyWriteScript = `
import json, sys, os
import numpy as np
d = sys.argv[1]
f16 = np.array([0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x7C00, 0xFC00, 0x8000, 0x3555, 0x0400], dtype="<u2").view("<f2")
rng = np.random.default_rng(0)
x = rng.standard_normal((7, 5))
cases = {
    "f2.npy": (f16.reshape(2, 5), (1, 0)),
    "f4.npy": (x.astype("<f4"), (1, 0)),
    "f8.npy": (np.concatenate([x.ravel(), [1e-46, 3.4e38, -0.0, 1/3]]).astype("<f8"), (1, 0)),
    "f4_be.npy": (x.astype(">f4"), (1, 0)),
    "f8_be_v2.npy": (x.astype(">f8"), (2, 0)),
    "f2_v3.npy": (f16, (3, 0)),
    "scalar.npy": (np.float32(2.5), (1, 0)),
    "empty.npy": (np.zeros((0, 4), dtype="<f4"), (1, 0)),
    "fortran.npy": (np.asfortranarray(x.astype("<f4")), (1, 0)),
    "int.npy": (np.arange(6, dtype="<i8"), (1, 0)),
}
out = {}
for name, (a, ver) in cases.items():
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        np.lib.format.write_array(f, np.asanyarray(a), version=ver)
    a = np.asanyarray(a)
    out[name] = {"shape": list(a.shape), "hex": a.astype("<f4").tobytes(order="C").hex() if a.dtype.kind == "f" else ""}
json.dump(out, sys.stdout)
`

type npyPyResult struct {
	Shape   []int  `json:"shape"`
	DType   string `json:"dtype"`
	Fortran bool   `json:"fortran"`
	Hex     string `json:"hex"`
}

// float32Hex renders data as little-endian float32 bytes in hex.
func float32Hex(data []float32) string {
	b := make([]byte, 4*len(data))
	encodeLEFloat32(b, data)
	return hex.EncodeToString(b)
}

func TestInteropNumPy(t *testing.T) {
	py := numpyPython(t)
	dir := t.TempDir()

	t.Run("numpy reads WriteNPY", func(t *testing.T) {
		cases := map[string]struct {
			shape []int
			data  []float32
		}{
			"m.npy": {[]int{3, 4}, []float32{0, 1, -2, 3.5, 1e-40, float32(math.Inf(-1)), 7, 8, 9, 10, 11, math.MaxFloat32}},
			"v.npy": {[]int{5}, []float32{1, 2, 3, 4, 5}},
			"s.npy": {[]int{}, []float32{-0.5}},
			"e.npy": {[]int{0, 3}, []float32{}},
		}
		var paths []string
		for name, c := range cases {
			p := filepath.Join(dir, name)
			if err := WriteNPY(p, c.shape, c.data); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		var got map[string]npyPyResult
		if err := json.Unmarshal(runScript(t, dir, "check.py", numpyCheckScript, nil, py, paths...), &got); err != nil {
			t.Fatal(err)
		}
		for name, c := range cases {
			r := got[filepath.Join(dir, name)]
			if !reflect.DeepEqual(r.Shape, c.shape) || r.DType != "<f4" || r.Fortran || r.Hex != float32Hex(c.data) {
				t.Errorf("%s: numpy sees %+v, want shape %v <f4 %s", name, r, c.shape, float32Hex(c.data))
			}
		}
	})

	t.Run("ReadNPY reads numpy", func(t *testing.T) {
		wdir := filepath.Join(dir, "np")
		os.Mkdir(wdir, 0o755)
		var want map[string]npyPyResult
		if err := json.Unmarshal(runScript(t, dir, "write.py", numpyWriteScript, nil, py, wdir), &want); err != nil {
			t.Fatal(err)
		}
		for name, w := range want {
			a, err := ReadNPY(filepath.Join(wdir, name))
			switch name {
			case "fortran.npy":
				if err == nil || !strings.Contains(err.Error(), "fortran_order is True") {
					t.Errorf("%s: error %v, want fortran_order error", name, err)
				}
				continue
			case "int.npy":
				if err == nil || !strings.Contains(err.Error(), `unsupported dtype "<i8"`) {
					t.Errorf("%s: error %v, want unsupported dtype", name, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if !reflect.DeepEqual(a.Shape, w.Shape) {
				t.Errorf("%s: shape %v, numpy %v", name, a.Shape, w.Shape)
			}
			if got := float32Hex(a.Data); got != w.Hex {
				t.Errorf("%s: values differ from numpy's float32 conversion:\n got %s\nwant %s", name, got, w.Hex)
			}
		}
		if len(want) != 10 {
			t.Errorf("numpy wrote %d files, want 10", len(want))
		}
	})
}

const nodeArrowScript = `
const fs = require("fs");
const { tableFromIPC } = require("apache-arrow");
const out = {};
for (const p of process.argv.slice(2)) {
  const t = tableFromIPC(fs.readFileSync(p));
  const vec = t.getChild("vector"), idx = t.getChild("item_idx"), nt = t.getChild("n_tokens");
  const r = { rows: t.numRows, batches: t.batches.length, fields: t.schema.fields.map(f => f.name + ":" + String(f.type)),
              metadata: Object.fromEntries(t.schema.metadata), dim: vec.type.listSize,
              valid: [], item_idx: [], n_tokens: [], vectors: [] };
  for (let i = 0; i < t.numRows; i++) {
    r.valid.push(vec.isValid(i));
    r.item_idx.push(idx.get(i));
    if (nt) r.n_tokens.push(nt.get(i));
    const v = vec.get(i);
    r.vectors.push(v === null ? null : Array.from(v));
  }
  out[p] = r;
}
process.stdout.write(JSON.stringify(out));
`

type nodeArrowResult struct {
	Rows     int               `json:"rows"`
	Batches  int               `json:"batches"`
	Fields   []string          `json:"fields"`
	Metadata map[string]string `json:"metadata"`
	Dim      int               `json:"dim"`
	Valid    []bool            `json:"valid"`
	ItemIdx  []int             `json:"item_idx"`
	NTokens  []int32           `json:"n_tokens"`
	Vectors  [][]float64       `json:"vectors"`
}

func TestInteropArrowJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		skipInterop(t, "Arrow JS interop: node not found in PATH")
	}
	mods := os.Getenv("MMPIPE_NODE_MODULES")
	if mods == "" {
		mods = filepath.Join("..", ".tools", "node", "node_modules")
	}
	mods, _ = filepath.Abs(mods)
	env := []string{"NODE_PATH=" + mods}
	probe := exec.Command(node, "-e", `require.resolve("apache-arrow")`)
	probe.Env = append(os.Environ(), env...)
	if out, err := probe.CombinedOutput(); err != nil {
		skipInterop(t, "Arrow JS interop: apache-arrow not found in %s (set MMPIPE_NODE_MODULES, or run `npm install apache-arrow` in %s): %v %s",
			mods, filepath.Dir(mods), err, firstLine(string(out)))
	}

	dir := t.TempDir()
	pooled := randomMatrix(23, 5, 0, true, 11)
	tokens := randomMatrix(6, 3, 4, true, 12)
	tokens.Meta.Extra = nil
	pp, tp := filepath.Join(dir, "image.clip.arrow"), filepath.Join(dir, "text.bert.tokens.arrow")
	if err := writeFeaturesBatched(pp, pooled, 10); err != nil {
		t.Fatal(err)
	}
	if err := WriteFeatures(tp, tokens); err != nil {
		t.Fatal(err)
	}
	var got map[string]nodeArrowResult
	out := runScript(t, dir, "read.js", nodeArrowScript, env, node, pp, tp)
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %.300s", err, out)
	}
	for _, c := range []struct {
		path    string
		m       *FeatureMatrix
		batches int
		fields  []string
	}{
		{pp, pooled, 3, []string{"item_idx:Int32", "vector:FixedSizeList[5]<Float32>"}},
		{tp, tokens, 1, []string{"item_idx:Int32", "vector:FixedSizeList[12]<Float32>", "n_tokens:Int32"}},
	} {
		r, ok := got[c.path]
		if !ok {
			t.Fatalf("no result for %s", c.path)
		}
		w := c.m.width()
		if r.Rows != c.m.Rows || r.Dim != w || r.Batches != c.batches || !reflect.DeepEqual(r.Fields, c.fields) {
			t.Errorf("%s: arrow js sees rows %d dim %d batches %d fields %v; want %d %d %d %v",
				filepath.Base(c.path), r.Rows, r.Dim, r.Batches, r.Fields, c.m.Rows, w, c.batches, c.fields)
		}
		mt := c.m.Meta
		wantMeta := map[string]string{
			"modality": mt.Modality, "encoder": mt.Encoder, "model_sha256": mt.ModelSHA256,
			"preprocess": mt.Preprocess, "pooling": mt.Pooling, "normalized": "true",
			"idmap_sha256": mt.IDMapSHA256, "mmpipe_version": mt.Version,
		}
		for k, v := range mt.Extra {
			wantMeta[k] = v
		}
		if c.m.Tokens > 0 {
			wantMeta["tokens"] = "4"
			wantMeta["dim"] = "3"
		}
		if !reflect.DeepEqual(r.Metadata, wantMeta) {
			t.Errorf("%s: metadata %v, want %v", filepath.Base(c.path), r.Metadata, wantMeta)
		}
		for i := 0; i < c.m.Rows && i < len(r.Valid) && i < len(r.Vectors); i++ {
			valid := c.m.Valid == nil || c.m.Valid[i]
			if r.Valid[i] != valid || r.ItemIdx[i] != i {
				t.Errorf("%s row %d: valid %v item_idx %d, want %v %d", filepath.Base(c.path), i, r.Valid[i], r.ItemIdx[i], valid, i)
			}
			if c.m.NTokens != nil && r.NTokens[i] != c.m.NTokens[i] {
				t.Errorf("%s row %d: n_tokens %d, want %d", filepath.Base(c.path), i, r.NTokens[i], c.m.NTokens[i])
			}
			if !valid {
				if r.Vectors[i] != nil {
					t.Errorf("%s row %d: null row read as %v", filepath.Base(c.path), i, r.Vectors[i])
				}
				continue
			}
			want := c.m.Data[i*w : (i+1)*w]
			if len(r.Vectors[i]) != w {
				t.Fatalf("%s row %d: %d values, want %d", filepath.Base(c.path), i, len(r.Vectors[i]), w)
			}
			for j, v := range r.Vectors[i] {
				if float32(v) != want[j] {
					t.Errorf("%s row %d col %d: %v, want %v", filepath.Base(c.path), i, j, v, want[j])
				}
			}
		}
	}
}

// firstLine returns the first line of s.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
