package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mmpipe/mmpipe/store"
	"github.com/mmpipe/mmpipe/store/imagestore"
)

// run executes the CLI in-process and returns stdout, stderr and the exit
// code main would use.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb}
	root := a.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(&errb, "mmpipe:", err)
	}
	return out.String(), errb.String(), exitCode(err)
}

func writeMMRec(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "toy.inter"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const toyInter = "userID\titemID\tx_label\n0\t0\t0\n0\t1\t0\n0\t2\t1\n0\t3\t2\n1\t1\t0\n1\t2\t0\n1\t0\t1\n1\t3\t2\n2\t3\t0\n"

func TestExitCodes(t *testing.T) {
	src := writeMMRec(t, toyInter)
	bad := writeMMRec(t, "userID\titemID\tx_label\n0\t0\t0\n0\tX\t0\n")
	out := filepath.Join(t.TempDir(), "ds")
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"ok", []string{"ingest", "--format", "mmrec", "--input", src, "--out", out}, 0, ""},
		{"skipped", []string{"ingest", "--format", "mmrec", src, "--out", out}, 0, ""},
		{"unknown format", []string{"ingest", "--format", "nope", "--input", src, "--out", out + "2"}, 2, "unknown format"},
		{"no format", []string{"ingest", "--input", src, "--out", out + "2"}, 2, "--format is required"},
		{"bad flag", []string{"ingest", "--frobnicate"}, 2, "unknown flag"},
		{"bad line", []string{"ingest", "--format", "mmrec", "--input", bad, "--out", out + "3"}, 2, "toy.inter:3"},
		{"bad line skipped", []string{"ingest", "--format", "mmrec", "--input", bad, "--out", out + "4", "--max-bad-lines", "1"}, 0, ""},
		{"missing input", []string{"ingest", "--format", "mmrec", "--input", "/no/such/file", "--out", out + "5"}, 2, "/no/such/file"},
		{"inspect nothing", []string{"inspect", t.TempDir()}, 2, "not a complete dataset"},
		{"unknown split", []string{"split", "--split", "weird", out}, 2, "unknown split"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := run(t, c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, stdout, stderr)
			}
			if c.msg != "" && !strings.Contains(stderr, c.msg) {
				t.Errorf("stderr %q does not mention %q", stderr, c.msg)
			}
		})
	}
	if stdout, _, _ := run(t, "ingest", "--format", "mmrec", src, "--out", out); !strings.Contains(stdout, "skipped") {
		t.Errorf("a re-run does not say it skipped: %s", stdout)
	}
}

func TestInspectJSONContract(t *testing.T) {
	src := writeMMRec(t, toyInter)
	feat := filepath.Join(src, "image_feat.npy")
	if err := store.WriteNPY(feat, []int{4, 2}, make([]float32, 8)); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "ds")
	if _, stderr, code := run(t, "ingest", "--format", "mmrec", "--input", src, "--out", out, "--split", "given", "--split", "loo"); code != 0 {
		t.Fatal(stderr)
	}
	stdout, stderr, code := run(t, "inspect", "--json", out)
	if code != 0 {
		t.Fatal(stderr)
	}
	var s struct {
		Users, Items, Interactions *int
		Splits                     map[string]struct{ Train, Valid, Test *int }
		Modalities                 []struct {
			Name    *string
			Dim     *int
			Encoder *string
			Present *int
		}
	}
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Users == nil || *s.Users != 3 || *s.Items != 4 || *s.Interactions != 9 {
		t.Fatalf("counts in %s", stdout)
	}
	g := s.Splits["given"]
	if g.Train == nil || *g.Train != 5 || *g.Valid != 2 || *g.Test != 2 {
		t.Errorf("given split in %s", stdout)
	}
	if l, ok := s.Splits["loo"]; !ok || *l.Test != 2 {
		t.Errorf("loo split in %s", stdout)
	}
	if len(s.Modalities) != 1 || *s.Modalities[0].Name != "image" || *s.Modalities[0].Dim != 2 || *s.Modalities[0].Present != 4 ||
		!strings.HasPrefix(*s.Modalities[0].Encoder, "imported:") {
		t.Errorf("modalities in %s", stdout)
	}
	// Feature file provenance.
	stdout, stderr, code = run(t, "inspect", "--json", filepath.Join(out, "features", "image.imported.arrow"))
	if code != 0 {
		t.Fatal(stderr)
	}
	var f map[string]any
	if err := json.Unmarshal([]byte(stdout), &f); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rows", "dim", "present", "modality", "encoder", "idmap_sha256", "preprocess", "pooling", "normalized", "mmpipe_version", "model_sha256"} {
		if _, ok := f[k]; !ok {
			t.Errorf("feature inspect lacks %q: %s", k, stdout)
		}
	}
	// Text output names the modality too.
	stdout, _, _ = run(t, "inspect", out)
	if !strings.Contains(stdout, "modality image") || !strings.Contains(stdout, "split given") {
		t.Errorf("text inspect: %s", stdout)
	}
}

func TestResultFileAndLogFormat(t *testing.T) {
	src := writeMMRec(t, toyInter)
	dir := t.TempDir()
	res := filepath.Join(dir, "result.json")
	_, stderr, code := run(t, "--log-format", "json", "--result-file", res, "ingest", "--format", "mmrec", src, "--out", filepath.Join(dir, "ds"))
	if code != 0 {
		t.Fatal(stderr)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(stderr, "\n", 2)[0]), &line); err != nil || line["msg"] == nil {
		t.Errorf("log line is not JSON: %q (%v)", stderr, err)
	}
	data, err := os.ReadFile(res)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(data, &r); err != nil || r["stage"] != "ingest" || r["skipped"] != false {
		t.Errorf("result file %s", data)
	}
	if _, _, code := run(t, "--log-format", "yaml", "version"); code != 2 {
		t.Errorf("--log-format yaml: exit %d, want 2", code)
	}
}

func TestExportFormatsAndDuckDB(t *testing.T) {
	src := writeMMRec(t, toyInter)
	dir := t.TempDir()
	ds := filepath.Join(dir, "ds")
	if _, stderr, code := run(t, "ingest", "--format", "mmrec", src, "--out", ds, "--split", "given", "--split", "loo"); code != 0 {
		t.Fatal(stderr)
	}
	want := map[string][]string{
		"mmssl":   {"train.json", "val.json", "test.json", "item2id.json", "user2id.json"},
		"mmrec":   {"toy.inter"},
		"recbole": {"toy.train.inter", "toy.valid.inter", "toy.test.inter", "toy.item2index", "toy.user2index", "toy.text"},
		"pmmrec":  {"toy_users.tsv", "toy_items_texts.tsv"},
		"parquet": {"items.parquet", "users.parquet", "interactions.parquet", "split_given.parquet", "split_loo.parquet"},
	}
	for format, files := range want {
		out := filepath.Join(dir, format)
		args := []string{"export", "--format", format, "--out", out, "--name", "toy", ds}
		if format == "recbole" || format == "pmmrec" {
			args = append(args, "--split", "loo")
		}
		if _, stderr, code := run(t, args...); code != 0 {
			t.Fatalf("%s: %s", format, stderr)
		}
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Errorf("%s: %v", format, err)
			}
		}
	}
	nm := nodeModules()
	if _, err := os.Stat(filepath.Join(nm, "@duckdb", "node-api")); err != nil {
		if os.Getenv("MMPIPE_REQUIRE_INTEROP") == "1" {
			t.Fatalf("MMPIPE_REQUIRE_INTEROP=1 but @duckdb/node-api is missing under %s", nm)
		}
		t.Skipf("DuckDB check skipped: @duckdb/node-api not installed under %s (make tools installs it)", nm)
	}
	script := filepath.Join(dir, "duck.js")
	js := `const { createRequire } = require('module');
const duck = createRequire(process.argv[2] + '/')('@duckdb/node-api');
(async () => {
  const conn = await (await duck.DuckDBInstance.create(':memory:')).connect();
  const r = await conn.runAndReadAll("select count(*)::INTEGER as n, count(distinct user_id)::INTEGER as u, " +
    "sum(case when part='test' then 1 else 0 end)::INTEGER as te, min(item_id) as first from read_parquet('" + process.argv[3] + "')");
  console.log(JSON.stringify(r.getRowObjectsJson()[0]));
})().catch(e => { console.error(e); process.exit(1); });`
	if err := os.WriteFile(script, []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
	outb, err := exec.Command("node", script, nm, filepath.Join(dir, "parquet", "split_given.parquet")).CombinedOutput()
	if err != nil {
		t.Fatalf("duckdb: %v: %s", err, outb)
	}
	var got struct {
		N, U, Te int
		First    string
	}
	if err := json.Unmarshal(outb, &got); err != nil {
		t.Fatalf("duckdb output %s: %v", outb, err)
	}
	if got.N != 9 || got.U != 3 || got.Te != 2 || got.First != "0" {
		t.Errorf("DuckDB read %+v, want 9 rows, 3 users, 2 test rows", got)
	}
}

func nodeModules() string {
	if p := os.Getenv("MMPIPE_NODE_MODULES"); p != "" {
		return p
	}
	abs, _ := filepath.Abs(filepath.Join("..", "..", ".tools", "node", "node_modules"))
	return abs
}

func TestDemoSmall(t *testing.T) {
	out := t.TempDir()
	stdout, stderr, code := run(t, "demo", "--out", out, "--users", "60", "--items", "40")
	if code != 0 {
		t.Fatalf("demo exit %d: %s", code, stderr)
	}
	for _, w := range []string{"users 60", "split loo", "split random", "lightgcn on", "mmssl on", "demo finished"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("demo output lacks %q:\n%s", w, stdout)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	src := writeMMRec(t, toyInter)
	ds := filepath.Join(t.TempDir(), "ds")
	if _, stderr, code := run(t, "ingest", "--format", "mmrec", src, "--out", ds); code != 0 {
		t.Fatal(stderr)
	}
	stdout, stderr, code := run(t, "split", "--split", "loo", "--split", "random", "--seed", "3", ds)
	if code != 0 {
		t.Fatal(stderr)
	}
	if !strings.Contains(stdout, "loo: train 5, valid 2, test 2") {
		t.Errorf("split output %q", stdout)
	}
	m, err := store.ReadManifest(ds)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Splits["random"]; !ok || len(m.Splits) != 3 {
		t.Errorf("manifest splits %v", m.Splits)
	}
	if _, err := os.Stat(store.SplitPath(ds, "loo")); err != nil {
		t.Error(err)
	}
	// Same parameters again: skipped, and says so in the result file.
	res := filepath.Join(t.TempDir(), "r.json")
	if _, stderr, code := run(t, "--result-file", res, "split", "--split", "loo", ds); code != 0 {
		t.Fatal(stderr)
	}
	data, _ := os.ReadFile(res)
	if !strings.Contains(string(data), `"skipped": true`) {
		t.Errorf("result %s", data)
	}
}

func TestInspectImageStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images.lmdb")
	st, err := imagestore.Open(dir, imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b imagestore.Batch
	b.PutImage("B001", []byte("\x89PNG fake bytes"), imagestore.LedgerEntry{URL: "http://x/1.png"})
	b.PutLedger("B002", imagestore.LedgerEntry{Status: imagestore.StatusFailed, ErrorClass: "http_404"})
	if err := st.Commit(&b); err != nil {
		t.Fatal(err)
	}
	st.Close()
	stdout, stderr, code := run(t, "inspect", "--json", dir)
	if code != 0 {
		t.Fatal(stderr)
	}
	var s struct {
		Images int            `json:"images"`
		Bytes  int            `json:"bytes"`
		Ledger map[string]int `json:"ledger"`
	}
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatal(err)
	}
	if s.Images != 1 || s.Bytes != 15 || s.Ledger["ok"] != 1 || s.Ledger["failed"] != 1 {
		t.Errorf("inspect %s", stdout)
	}
}
