package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"no subcommand", nil, exitUsage},
		{"unknown subcommand", []string{"bogus"}, exitUsage},
		{"ratings without out", []string{"ratings", "--rows", "10"}, exitUsage},
		{"ratings bad flag", []string{"ratings", "--rows", "x", "--out", "-"}, exitUsage},
		{"ratings bad zipf", []string{"ratings", "--rows", "10", "--zipf-s", "0.5", "--out", filepath.Join(dir, "bad.csv")}, exitUsage},
		{"ratings left no file", []string{"ratings", "--rows", "10", "--out", filepath.Join(dir, "bad.csv", "x")}, exitInternal},
		{"ratings plain", []string{"ratings", "--rows", "1000", "--users", "50", "--items", "20", "--out", filepath.Join(dir, "r.csv")}, exitOK},
		{"ratings gzip", []string{"ratings", "--rows", "1000", "--users", "50", "--items", "20", "--out", filepath.Join(dir, "r.csv.gz")}, exitOK},
		{"demo without out", []string{"demo"}, exitUsage},
		{"demo bad config", []string{"demo", "--items", "2", "--categories", "4", "--out", filepath.Join(dir, "bad")}, exitUsage},
		{"demo", []string{"demo", "--users", "30", "--items", "40", "--out", filepath.Join(dir, "demo")}, exitOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
		})
	}

	plain, err := os.ReadFile(filepath.Join(dir, "r.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(plain), "\n"); n != 1000 {
		t.Errorf("r.csv has %d lines, want 1000", n)
	}
	f, err := os.Open(filepath.Join(dir, "r.csv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unzipped, plain) {
		t.Errorf("gzip output differs from the plain output of the same flags")
	}
	if _, err := os.Stat(filepath.Join(dir, "demo", "meta_Demo_Products.json.gz")); err != nil {
		t.Errorf("demo: %v", err)
	}
}

func TestRunInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"ratings", "--rows", "1000000", "--out", filepath.Join(t.TempDir(), "r.csv")}, &stdout, &stderr)
	if code != exitInterrupted {
		t.Fatalf("exit code %d, want %d; stderr: %s", code, exitInterrupted, stderr.String())
	}
}

func TestRunRemovesFailedOutput(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bad.csv")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"ratings", "--rows", "10", "--zipf-v", "0.5", "--out", out}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("exit code %d, want %d", code, exitUsage)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("failed run left %s behind (stat: %v)", out, err)
	}
}
