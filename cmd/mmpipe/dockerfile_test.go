package main

import (
	"bufio"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The Dockerfile cannot be built on the test machines (no Docker), so this
// test keeps it honest: every path it copies from the build context exists
// in the repository and is not excluded by .dockerignore, every package the
// binary needs is copied, every path copied from the build stage is an
// output of the Makefile targets that stage runs, and the runtime stage has
// a non-root user, ONNXRUNTIME_SHARED_LIBRARY_PATH pointing at the copied
// library, and no Go toolchain.

// repoRoot is the module root, seen from cmd/mmpipe.
const repoRoot = "../.."

// dockerInstr is one Dockerfile instruction with continuation lines joined.
type dockerInstr struct {
	line  int
	cmd   string // upper case
	args  string
	stage string // name (or index) of the stage it belongs to
}

// parseDockerfile splits a Dockerfile into instructions.
func parseDockerfile(t *testing.T, p string) []dockerInstr {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []dockerInstr
	var cur strings.Builder
	start, n, stage := 0, 0, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if s, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		full := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			f := strings.Fields(args)
			stage = f[len(f)-1]
			if len(f) < 3 || !strings.EqualFold(f[len(f)-2], "AS") {
				stage = f[0]
			}
		}
		out = append(out, dockerInstr{line: start, cmd: cmd, args: strings.TrimSpace(args), stage: stage})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// makefile holds the variables and targets of a simple Makefile.
type makefile struct {
	vars    map[string]string
	deps    map[string][]string
	recipes map[string][]string
}

func parseMakefile(t *testing.T, p string) *makefile {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	mf := &makefile{vars: map[string]string{}, deps: map[string][]string{}, recipes: map[string][]string{}}
	varRE := regexp.MustCompile(`^([A-Z_]+)\s*(?::=|\?=|=)\s*(.*)$`)
	targetRE := regexp.MustCompile(`^([a-z][a-z-]*):([^=]*?)(?:##.*)?$`)
	target := ""
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "\t") && target != "":
			mf.recipes[target] = append(mf.recipes[target], strings.TrimSpace(line))
		case varRE.MatchString(line):
			m := varRE.FindStringSubmatch(line)
			mf.vars[m[1]] = m[2]
			target = ""
		case targetRE.MatchString(line):
			m := targetRE.FindStringSubmatch(line)
			target = m[1]
			mf.deps[target] = strings.Fields(m[2])
		default:
			if !strings.HasPrefix(line, "\t") {
				target = ""
			}
		}
	}
	return mf
}

// expand substitutes $(VAR) references (repeatedly, for nested ones).
func (mf *makefile) expand(s string) string {
	re := regexp.MustCompile(`\$\(([A-Z_]+)\)`)
	for range 10 {
		next := re.ReplaceAllStringFunc(s, func(ref string) string {
			if v, ok := mf.vars[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		})
		if next == s {
			break
		}
		s = next
	}
	return s
}

// outputs lists the files the recipes of target (and its prerequisites)
// produce: the arguments of `-o X`, and the destinations of `mv A X` and
// `cp A X`, relative to the Makefile's directory.
func (mf *makefile) outputs(target string) []string {
	outRE := regexp.MustCompile(`(?:-o\s+|\bmv\s+\S+\s+|\bcp\s+\S+\s+)([^\s;&|]+)`)
	var out []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(tg string) {
		if seen[tg] {
			return
		}
		seen[tg] = true
		for _, d := range mf.deps[tg] {
			visit(d)
		}
		for _, r := range mf.recipes[tg] {
			for _, m := range outRE.FindAllStringSubmatch(mf.expand(r), -1) {
				out = append(out, path.Clean(strings.Trim(m[1], `"'`)))
			}
		}
	}
	visit(target)
	return out
}

// copyArgs splits COPY's arguments into flags, sources and destination.
func copyArgs(args string) (flags map[string]string, srcs []string, dst string) {
	flags = map[string]string{}
	f := strings.Fields(args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		flags[k] = v
		f = f[1:]
	}
	if len(f) < 2 {
		return flags, nil, ""
	}
	return flags, f[:len(f)-1], f[len(f)-1]
}

// dockerIgnored reports whether rel is excluded by a .dockerignore pattern
// (patterns without "!" and "**", matched against rel and its parents).
func dockerIgnored(patterns []string, rel string) bool {
	for p := rel; p != "." && p != "/"; p = path.Dir(p) {
		for _, pat := range patterns {
			if ok, _ := path.Match(pat, p); ok {
				return true
			}
		}
	}
	return false
}

func readDockerignore(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var pats []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "!") {
			continue
		}
		pats = append(pats, path.Clean(strings.TrimPrefix(l, "/")))
	}
	return pats
}

func TestDockerfile(t *testing.T) {
	tests := []struct {
		file string
		// runtimeImage checks the runtime stage's base image.
		runtimeImage func(img string) bool
		wantImage    string
	}{
		{"Dockerfile", func(img string) bool { return strings.HasPrefix(img, "debian:") && strings.Contains(img, "slim") }, "debian:*-slim"},
		{"Dockerfile.cuda", func(img string) bool {
			return strings.HasPrefix(img, "nvidia/cuda:") && strings.Contains(img, "runtime")
		}, "nvidia/cuda:*-runtime-*"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) { checkDockerfile(t, tc.file, tc.runtimeImage, tc.wantImage) })
	}
}

func checkDockerfile(t *testing.T, name string, runtimeImage func(string) bool, wantImage string) {
	instrs := parseDockerfile(t, filepath.Join(repoRoot, name))
	mf := parseMakefile(t, filepath.Join(repoRoot, "Makefile"))
	ignored := readDockerignore(t)

	args := map[string]string{}
	workdir := map[string]string{}
	var stages []string
	var fromImage = map[string]string{}
	made := map[string][]string{} // stage → Makefile outputs of its RUN make lines
	var contextCopies []string    // sources copied from the build context into the build stage
	env := map[string]string{}
	user := map[string]string{}
	var ortDst string
	makeRE := regexp.MustCompile(`\bmake\s+((?:[a-z][a-z-]*\s*)+)`)
	for _, in := range instrs {
		switch in.cmd {
		case "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			args[k] = v
		case "FROM":
			img := os.Expand(strings.Fields(in.args)[0], func(k string) string { return args[k] })
			stages = append(stages, in.stage)
			fromImage[in.stage] = img
		case "WORKDIR":
			workdir[in.stage] = path.Join(workdir[in.stage], in.args)
		case "USER":
			user[in.stage] = in.args
		case "ENV":
			k, v, _ := strings.Cut(in.args, "=")
			env[k] = strings.Trim(v, `"`)
		case "RUN":
			for _, m := range makeRE.FindAllStringSubmatch(in.args, -1) {
				for _, tg := range strings.Fields(m[1]) {
					if _, ok := mf.recipes[tg]; !ok {
						t.Errorf("%s:%d: make %s: no such Makefile target", name, in.line, tg)
					}
					made[in.stage] = append(made[in.stage], mf.outputs(tg)...)
				}
			}
		case "COPY", "ADD":
			flags, srcs, dst := copyArgs(in.args)
			if len(srcs) == 0 {
				t.Errorf("%s:%d: %s without source and destination", name, in.line, in.cmd)
				continue
			}
			from, ok := flags["from"]
			if !ok {
				for _, s := range srcs {
					rel := path.Clean(s)
					matches, _ := filepath.Glob(filepath.Join(repoRoot, filepath.FromSlash(rel)))
					if len(matches) == 0 {
						t.Errorf("%s:%d: COPY source %s does not exist in the repository", name, in.line, s)
					}
					if dockerIgnored(ignored, rel) {
						t.Errorf("%s:%d: COPY source %s is excluded by .dockerignore", name, in.line, s)
					}
					contextCopies = append(contextCopies, rel)
				}
				continue
			}
			if !slices.Contains(stages, from) {
				t.Errorf("%s:%d: COPY --from=%s: no earlier stage of that name", name, in.line, from)
				continue
			}
			for _, s := range srcs {
				rel, ok := strings.CutPrefix(path.Clean(s), workdir[from]+"/")
				if !ok {
					t.Errorf("%s:%d: COPY --from=%s %s: not under the stage's WORKDIR %s", name, in.line, from, s, workdir[from])
					continue
				}
				if !slices.Contains(made[from], rel) {
					t.Errorf("%s:%d: COPY --from=%s %s: no Makefile target run in that stage produces %s (they produce %v)",
						name, in.line, from, s, rel, made[from])
				}
				switch {
				case strings.Contains(rel, "libonnxruntime"):
					ortDst = dst
					if strings.HasSuffix(dst, "/") {
						ortDst = path.Join(dst, path.Base(rel))
					}
				case rel == ".ort-gpu": // the directory of the GPU build's libraries
					ortDst = path.Join(dst, "libonnxruntime.so.1")
				}
			}
		}
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build and a runtime stage", len(stages))
	}
	build, runtime := stages[0], stages[len(stages)-1]
	if img := fromImage[build]; !strings.HasPrefix(img, "golang:") || !strings.HasSuffix(img, "-bookworm") {
		t.Errorf("build stage image %s, want golang:<version>-bookworm", img)
	} else if gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod")); err == nil {
		want := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
		if want == nil || !strings.HasPrefix(img, "golang:"+string(want[1])) {
			t.Errorf("build stage image %s does not match go.mod's go version", img)
		}
	}
	if img := fromImage[runtime]; !runtimeImage(img) {
		t.Errorf("runtime stage image %s, want %s", img, wantImage)
	}
	if !slices.Contains(made[build], "bin/mmpipe") {
		t.Errorf("the build stage does not run `make build` (outputs %v)", made[build])
	}
	for _, in := range instrs {
		if in.stage == runtime && in.cmd == "RUN" {
			for _, bad := range []string{"gcc", "build-essential", "golang", "clang"} {
				if regexp.MustCompile(`\b` + bad + `\b`).MatchString(in.args) {
					t.Errorf("%s:%d: the runtime stage installs %s", name, in.line, bad)
				}
			}
		}
	}
	switch u := user[runtime]; {
	case u == "":
		t.Error("the runtime stage has no USER: it would run as root")
	case u == "root" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:"):
		t.Errorf("the runtime stage runs as %s", u)
	}
	if ortDst == "" || env["ONNXRUNTIME_SHARED_LIBRARY_PATH"] != ortDst {
		t.Errorf("ONNXRUNTIME_SHARED_LIBRARY_PATH=%q, the ONNX Runtime library is copied to %q", env["ONNXRUNTIME_SHARED_LIBRARY_PATH"], ortDst)
	}
	for _, need := range []string{"go.mod", "go.sum", "Makefile"} {
		if !slices.Contains(contextCopies, need) {
			t.Errorf("the build stage does not copy %s", need)
		}
	}

	// Every package of the module that the binary needs is copied.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Log("no go tool on PATH: package coverage not checked")
		return
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a dependency outside the module
		}
		rel = filepath.ToSlash(rel)
		covered := slices.ContainsFunc(contextCopies, func(c string) bool {
			return c == "." || rel == c || strings.HasPrefix(rel, c+"/")
		})
		if !covered {
			t.Errorf("package directory %s is needed by cmd/mmpipe but the Dockerfile does not copy it", rel)
		}
		if dockerIgnored(ignored, rel) {
			t.Errorf("package directory %s is excluded by .dockerignore", rel)
		}
	}
}
