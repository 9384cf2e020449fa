// Package deploy_test checks the deployment examples in deploy/: the Airflow DAG (its structure, read with
// Python's ast module where python3 is present, never executed), the Kubernetes Indexed Job, and that every
// mmpipe subcommand and flag they use exists in the binary built from this module.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	dagPath = "airflow/mmpipe_dag.py"
	jobPath = "k8s/crawl-indexed-job.yaml"
)

// subcommands are the mmpipe stages a scheduler may run.
var subcommands = []string{"ingest", "crawl", "merge", "encode", "train", "verify"}

// stageUse is one mmpipe invocation found in a deployment file: the subcommand and the long flags it passes.
type stageUse struct {
	Sub   string   `json:"sub"`
	Flags []string `json:"flags"`
	Where string   `json:"where"`
}

// dagCheckPy parses the DAG with ast (never imports or runs it) and prints a JSON report: the structural errors
// and every mmpipe invocation with its flags.
const dagCheckPy = `
import ast, json, sys

SUBS = set(sys.argv[2].split(","))
src = open(sys.argv[1], encoding="utf-8").read()
tree = ast.parse(src, filename=sys.argv[1])
errors, stages = [], []

# Module-level NAME = [ ... ] lists (COMMON and the like), resolved where a stage list concatenates them.
module_lists = {}
for node in tree.body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        module_lists[node.targets[0].id] = node.value

def flatten(expr, depth=0):
    """The elements of a list expression (List, List + List, NAME), or None if it is not static."""
    if depth > 10:
        return None
    if isinstance(expr, ast.List):
        return list(expr.elts)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left, right = flatten(expr.left, depth + 1), flatten(expr.right, depth + 1)
        if left is None or right is None:
            return None
        return left + right
    if isinstance(expr, ast.Name) and expr.id in module_lists:
        return flatten(module_lists[expr.id], depth + 1)
    return None

def const_str(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

def record(elts, where):
    """Check one argument list that runs mmpipe and record its subcommand and flags."""
    if elts is None:
        errors.append("%s: not a static list of arguments" % where)
        return
    words = [const_str(e) for e in elts]
    if words and words[0] is not None and (words[0] == "mmpipe" or words[0].endswith("/mmpipe")):
        words = words[1:]
        if not words:  # cmds=["mmpipe"] alone: the subcommand is in arguments
            return
    if not words or words[0] not in SUBS:
        errors.append("%s: argument list starts with %r, not an mmpipe stage %s" % (where, words[0] if words else None, sorted(SUBS)))
        return
    flags = sorted({w.split("=", 1)[0] for w in words if w is not None and w.startswith("--")})
    stages.append({"sub": words[0], "flags": flags, "where": where})

def where(node):
    return "line %d" % node.lineno

functions = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}

def lists_returned(fn):
    """The argument lists a shard-list function returns: a comprehension's element or a list of lists."""
    out = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Return) and node.value is not None:
            v = node.value
            if isinstance(v, (ast.ListComp, ast.GeneratorExp)):
                out.append((flatten(v.elt), where(v)))
            elif isinstance(v, ast.List) and v.elts and all(isinstance(e, (ast.List, ast.BinOp)) for e in v.elts):
                out.extend((flatten(e), where(e)) for e in v.elts)
            else:
                out.append((None, where(v)))
    return out

imports_kpo = any(
    isinstance(n, ast.ImportFrom) and n.module == "airflow.providers.cncf.kubernetes.operators.pod"
    and any(a.name == "KubernetesPodOperator" for a in n.names)
    for n in ast.walk(tree))
if not imports_kpo:
    errors.append("KubernetesPodOperator is not imported from airflow.providers.cncf.kubernetes.operators.pod")

def callee(call):
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None

defines_dag = False
for n in ast.walk(tree):
    if isinstance(n, ast.Call) and callee(n) == "DAG":
        defines_dag = True
    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for d in n.decorator_list:
            if (isinstance(d, ast.Call) and callee(d) == "dag") or (isinstance(d, ast.Name) and d.id == "dag") or (isinstance(d, ast.Attribute) and d.attr == "dag"):
                defines_dag = True
if not defines_dag:
    errors.append("no DAG is defined (DAG(...) or @dag)")

mapped = {}  # task_id -> subcommands of the expanded argument lists
xcom_push = False
for n in ast.walk(tree):
    if isinstance(n, ast.Call):
        for kw in n.keywords:
            if kw.arg == "do_xcom_push" and isinstance(kw.value, ast.Constant) and kw.value.value is True:
                xcom_push = True
            if kw.arg in ("arguments", "cmds") and callee(n) != "expand":
                record(flatten(kw.value), "%s=%s" % (kw.arg, where(kw.value)))
    if isinstance(n, ast.Dict):
        for k, v in zip(n.keys, n.values):
            if const_str(k) == "do_xcom_push" and isinstance(v, ast.Constant) and v.value is True:
                xcom_push = True
    if isinstance(n, ast.Call) and callee(n) == "expand" and isinstance(n.func, ast.Attribute):
        partial = n.func.value
        if not (isinstance(partial, ast.Call) and callee(partial) == "partial"):
            continue
        task_id = next((const_str(k.value) for k in partial.keywords if k.arg == "task_id"), None)
        for kw in n.keywords:
            if kw.arg != "arguments":
                continue
            before = len(stages)
            v = kw.value
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id in functions:
                for elts, w in lists_returned(functions[v.func.id]):
                    record(elts, "expand(arguments=%s()) %s" % (v.func.id, w))
            elif isinstance(v, ast.List):
                for e in v.elts:
                    record(flatten(e), "expand(arguments=[...]) " + where(e))
            elif isinstance(v, (ast.ListComp, ast.GeneratorExp)):
                record(flatten(v.elt), "expand(arguments=[...]) " + where(v))
            else:
                errors.append("%s: expand(arguments=...) is neither a list nor a call of a function in this file" % where(v))
            mapped[task_id] = [s for s in stages[before:]]

for sub in ("crawl", "encode"):
    uses = [s for ss in mapped.values() for s in ss if s["sub"] == sub]
    if not uses:
        errors.append("the %s shards are not a mapped task (.partial(...).expand(arguments=...))" % sub)
    for s in uses:
        if "--shard" not in s["flags"]:
            errors.append("%s (%s) has no --shard" % (sub, s["where"]))
for sub in sorted(SUBS):
    if not any(s["sub"] == sub for s in stages):
        errors.append("no task runs mmpipe %s" % sub)
for s in stages:
    for f in ("--log-format", "--result-file"):
        if f not in s["flags"]:
            errors.append("mmpipe %s (%s) does not pass %s" % (s["sub"], s["where"], f))
if "/airflow/xcom/return.json" not in src:
    errors.append("no --result-file /airflow/xcom/return.json")
if not xcom_push:
    errors.append("do_xcom_push=True is not set")

json.dump({"errors": errors, "stages": stages}, sys.stdout)
`

// python3 returns the Python interpreter the DAG check uses, or skips (fails with MMPIPE_REQUIRE_PYTHON=1).
func python3(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	if os.Getenv("MMPIPE_REQUIRE_PYTHON") == "1" {
		t.Fatal("/usr/bin/python3 is absent and MMPIPE_REQUIRE_PYTHON=1")
	}
	t.Skip("/usr/bin/python3 is absent: the Airflow DAG's structure is not checked (MMPIPE_REQUIRE_PYTHON=1 makes this a failure)")
	return ""
}

// dagStages runs the ast check on the DAG and returns its report.
func dagStages(t *testing.T, py string) (errs []string, stages []stageUse) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "dagcheck.py")
	if err := os.WriteFile(script, []byte(dagCheckPy), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(py, script, dagPath, strings.Join(subcommands, ","))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", py, dagPath, err, stderr.String())
	}
	var rep struct {
		Errors []string   `json:"errors"`
		Stages []stageUse `json:"stages"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("dag check output %q: %v", out, err)
	}
	return rep.Errors, rep.Stages
}

func TestAirflowDAGStructure(t *testing.T) {
	errs, stages := dagStages(t, python3(t))
	for _, e := range errs {
		t.Errorf("%s: %s", dagPath, e)
	}
	if len(stages) == 0 {
		t.Fatalf("%s: no mmpipe stage found", dagPath)
	}
	for _, s := range stages {
		t.Logf("%s: mmpipe %s %v (%s)", dagPath, s.Sub, s.Flags, s.Where)
	}
}

// The Kubernetes manifests, as far as the test reads them.
type job struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		CompletionMode string `yaml:"completionMode"`
		Completions    *int   `yaml:"completions"`
		Parallelism    *int   `yaml:"parallelism"`
		Template       struct {
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []struct {
					Name      string   `yaml:"name"`
					Command   []string `yaml:"command"`
					Args      []string `yaml:"args"`
					Resources struct {
						Limits map[string]string `yaml:"limits"`
					} `yaml:"resources"`
					SecurityContext struct {
						RunAsNonRoot *bool `yaml:"runAsNonRoot"`
					} `yaml:"securityContext"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func readJobs(t *testing.T) []job {
	t.Helper()
	b, err := os.ReadFile(jobPath)
	if err != nil {
		t.Fatal(err)
	}
	var jobs []job
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var j job
		err := dec.Decode(&j)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", jobPath, err)
		}
		if j.Kind != "" {
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// mmpipeArgs returns the mmpipe arguments of a container (command + args, without the binary).
func mmpipeArgs(command, args []string) []string {
	all := append(slices.Clone(command), args...)
	if len(all) > 0 && (all[0] == "mmpipe" || strings.HasSuffix(all[0], "/mmpipe")) {
		all = all[1:]
	}
	return all
}

func TestCrawlIndexedJob(t *testing.T) {
	jobs := readJobs(t)
	if len(jobs) < 2 {
		t.Fatalf("%s: %d Job documents, want the indexed crawl Job and the merge Job", jobPath, len(jobs))
	}
	var indexed, merge int
	shardRe := regexp.MustCompile(`^\$\(JOB_COMPLETION_INDEX\)/(\d+)$`)
	for _, j := range jobs {
		if j.Kind != "Job" {
			t.Errorf("%s: document %q is a %s, want Job", jobPath, j.Metadata.Name, j.Kind)
			continue
		}
		ps := j.Spec.Template.Spec
		if len(ps.Containers) == 0 {
			t.Errorf("%s: Job %s has no container", jobPath, j.Metadata.Name)
			continue
		}
		for _, c := range ps.Containers {
			nonRoot := ps.SecurityContext.RunAsNonRoot
			if c.SecurityContext.RunAsNonRoot != nil {
				nonRoot = c.SecurityContext.RunAsNonRoot
			}
			if nonRoot == nil || !*nonRoot {
				t.Errorf("%s: Job %s container %s: runAsNonRoot is not true", jobPath, j.Metadata.Name, c.Name)
			}
			if c.Resources.Limits["cpu"] == "" || c.Resources.Limits["memory"] == "" {
				t.Errorf("%s: Job %s container %s: no cpu and memory limits", jobPath, j.Metadata.Name, c.Name)
			}
			args := mmpipeArgs(c.Command, c.Args)
			if len(args) == 0 {
				t.Errorf("%s: Job %s container %s runs no mmpipe stage", jobPath, j.Metadata.Name, c.Name)
				continue
			}
			switch args[0] {
			case "crawl":
				i := slices.Index(args, "--shard")
				if i < 0 || i+1 >= len(args) {
					t.Errorf("%s: Job %s: crawl without --shard", jobPath, j.Metadata.Name)
					continue
				}
				m := shardRe.FindStringSubmatch(args[i+1])
				if m == nil {
					t.Errorf("%s: Job %s: --shard %q is not $(JOB_COMPLETION_INDEX)/n", jobPath, j.Metadata.Name, args[i+1])
					continue
				}
				n, _ := strconv.Atoi(m[1])
				if j.Spec.CompletionMode != "Indexed" {
					t.Errorf("%s: Job %s: completionMode %q, want Indexed", jobPath, j.Metadata.Name, j.Spec.CompletionMode)
				}
				if j.Spec.Completions == nil {
					t.Errorf("%s: Job %s: no completions", jobPath, j.Metadata.Name)
				} else if *j.Spec.Completions != n {
					t.Errorf("%s: Job %s: --shard .../%d but completions %d", jobPath, j.Metadata.Name, n, *j.Spec.Completions)
				}
				if j.Spec.Parallelism == nil || *j.Spec.Parallelism < 1 {
					t.Errorf("%s: Job %s: no parallelism", jobPath, j.Metadata.Name)
				}
				indexed++
			case "merge":
				merge++
			}
		}
	}
	if indexed != 1 || merge != 1 {
		t.Errorf("%s: %d indexed crawl Jobs and %d merge Jobs, want 1 and 1", jobPath, indexed, merge)
	}
}

// yamlStages returns the mmpipe invocations of the Kubernetes manifests.
func yamlStages(t *testing.T) []stageUse {
	var out []stageUse
	for _, j := range readJobs(t) {
		for _, c := range j.Spec.Template.Spec.Containers {
			args := mmpipeArgs(c.Command, c.Args)
			if len(args) == 0 {
				continue
			}
			s := stageUse{Sub: args[0], Where: jobPath + " " + j.Metadata.Name}
			for _, a := range args[1:] {
				if strings.HasPrefix(a, "--") {
					s.Flags = append(s.Flags, strings.SplitN(a, "=", 2)[0])
				}
			}
			out = append(out, s)
		}
	}
	return out
}

// scanDAGStages is the rough reading of the DAG used where Python is absent: every list literal that starts
// with a subcommand, up to its closing bracket, and the "--flag" strings in it (COMMON's flags are global ones,
// which every subcommand accepts; they are checked through the literal list that defines them).
func scanDAGStages(t *testing.T) []stageUse {
	b, err := os.ReadFile(dagPath)
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	start := regexp.MustCompile(`\[\s*"(` + strings.Join(subcommands, "|") + `)"`)
	flagRe := regexp.MustCompile(`"(--[a-z0-9-]+)"`)
	var out []stageUse
	for _, loc := range start.FindAllStringSubmatchIndex(src, -1) {
		depth, end := 0, len(src)
		for i := loc[0]; i < len(src); i++ {
			if src[i] == '[' {
				depth++
			} else if src[i] == ']' {
				depth--
				if depth == 0 {
					end = i
					break
				}
			}
		}
		s := stageUse{Sub: src[loc[2]:loc[3]], Where: dagPath + " (scan)"}
		for _, m := range flagRe.FindAllStringSubmatch(src[loc[0]:end], -1) {
			s.Flags = append(s.Flags, m[1])
		}
		out = append(out, s)
	}
	if m := regexp.MustCompile(`(?s)COMMON = \[(.*?)\]`).FindStringSubmatch(src); m != nil {
		s := stageUse{Sub: "ingest", Where: dagPath + " COMMON (scan)"}
		for _, f := range flagRe.FindAllStringSubmatch(m[1], -1) {
			s.Flags = append(s.Flags, f[1])
		}
		out = append(out, s)
	}
	return out
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// mmpipeBinary builds ./cmd/mmpipe from the module root once per test binary.
func mmpipeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mmpipe-deploy-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mmpipe")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/mmpipe")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build ./cmd/mmpipe: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestUsedFlagsExist(t *testing.T) {
	used := yamlStages(t)
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		errs, stages := dagStages(t, "/usr/bin/python3")
		if len(errs) > 0 {
			t.Logf("%s has structural errors (TestAirflowDAGStructure reports them)", dagPath)
		}
		used = append(used, stages...)
	} else {
		used = append(used, scanDAGStages(t)...)
	}
	if len(used) == 0 {
		t.Fatal("no mmpipe invocation found in the deployment files")
	}
	bin := mmpipeBinary(t)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
	help := map[string]string{}
	for _, s := range used {
		h, ok := help[s.Sub]
		if !ok {
			out, err := exec.Command(bin, s.Sub, "--help").CombinedOutput()
			if err != nil {
				t.Errorf("mmpipe %s --help: %v\n%s", s.Sub, err, out)
			}
			h = string(out)
			help[s.Sub] = h
			// An unknown subcommand with --help prints the root's help and exits 0.
			if !strings.Contains(h, "Usage:\n  mmpipe "+s.Sub) {
				t.Errorf("%s: mmpipe has no subcommand %q", s.Where, s.Sub)
				continue
			}
		}
		for _, f := range s.Flags {
			if !regexp.MustCompile(`(^|[\s,])` + regexp.QuoteMeta(f) + `\s`).MatchString(h) {
				t.Errorf("%s: mmpipe %s has no flag %s", s.Where, s.Sub, f)
			}
		}
	}
}
