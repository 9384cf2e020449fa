package imagestore

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Helper processes: the test binary runs itself with -test.run=^TestHelperProcess$
// and IMAGESTORE_HELPER naming the role.
const (
	helperEnv    = "IMAGESTORE_HELPER"
	helperDirEnv = "IMAGESTORE_HELPER_DIR"
	crashBatch   = 16
)

func crashKey(i int) string  { return fmt.Sprintf("k%08d", i) }
func crashSize(k string) int { return sizeOf(k, 1000, 48<<10) }

func helperCmd(t *testing.T, role, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, helperDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	return cmd
}

// TestHelperProcess is not a test: it is the child process of the tests
// below, and returns at once when run normally.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		return
	}
	dir := os.Getenv(helperDirEnv)
	var err error
	switch role {
	case "writer":
		err = helperWriter(dir)
	case "reader":
		err = helperReader(dir)
	default:
		err = fmt.Errorf("unknown helper role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helperWriter commits batches of crashBatch images, continuing after the
// images already stored, and prints the committed count after each commit,
// until it is killed.
func helperWriter(dir string) error {
	s, err := Open(dir, Options{InitialMapSize: 1 << 20})
	if err != nil {
		return err
	}
	st, err := s.Stats()
	if err != nil {
		return err
	}
	for n := int(st.Images); ; n += crashBatch {
		var b Batch
		for i := n; i < n+crashBatch; i++ {
			k := crashKey(i)
			b.PutImage(k, content(k, crashSize(k)), LedgerEntry{URL: "http://example.com/" + k, Attempts: 1})
		}
		if err := s.Commit(&b); err != nil {
			return err
		}
		if _, err := fmt.Fprintln(os.Stdout, n+crashBatch); err != nil {
			return err
		}
	}
}

// helperReader opens the store read-only and answers each "check" line on
// stdin with a JSON line: its view of the stats and the number of
// inconsistent keys.
func helperReader(dir string) error {
	s, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		st, err := s.Stats()
		if err != nil {
			return err
		}
		bad := 0
		err = s.Keys(func(k string) error {
			img, ok, err := s.Get(k)
			if err != nil {
				return err
			}
			e, eok, err := s.Ledger(k)
			if err != nil {
				return err
			}
			if !ok || !eok || e.SHA256 != shaHex(img) || string(img) != string(content(k, len(img))) {
				bad++
			}
			return nil
		})
		if err != nil {
			return err
		}
		out, _ := json.Marshal(map[string]int64{"images": st.Images, "bytes": st.Bytes, "map_size": st.MapSize, "bad": int64(bad)})
		fmt.Println(string(out))
	}
	return in.Err()
}

// TestKilledWriterLeavesConsistentStore SIGKILLs a writer process in the
// middle of its commit loop, several times, and checks after each kill that
// the store holds whole batches only, every image with its "ok" ledger entry
// and matching sha256, and at least what the writer reported as committed;
// then a new writer continues.
func TestKilledWriterLeavesConsistentStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := newDir(t)
	r := rand.New(rand.NewPCG(7, 7))
	reported := 0
	for round := range 3 {
		cmd := helperCmd(t, "writer", dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		target := reported + 20*crashBatch
		for lines.Scan() {
			n, err := strconv.Atoi(lines.Text())
			if err != nil {
				t.Fatalf("writer printed %q", lines.Text())
			}
			reported = n
			if n >= target {
				break
			}
		}
		if reported < target {
			cmd.Wait()
			t.Fatalf("round %d: writer stopped at %d before being killed", round, reported)
		}
		// Kill at a random point of the next commits.
		time.Sleep(time.Duration(r.IntN(8000)) * time.Microsecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, stdout)
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: writer ended with %v, not by SIGKILL", round, err)
		}

		n := verifyCrashStore(t, dir, reported)
		t.Logf("round %d: writer reported %d, store holds %d", round, reported, n)
		reported = n
	}

	// A second writer continues where the killed ones stopped.
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i := reported; i < reported+crashBatch; i++ {
		k := crashKey(i)
		b.PutImage(k, content(k, crashSize(k)), LedgerEntry{})
	}
	if err := s.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := verifyCrashStore(t, dir, reported+crashBatch); n != reported+crashBatch {
		t.Fatalf("after the second writer: %d images, want %d", n, reported+crashBatch)
	}
}

// verifyCrashStore checks the store a killed writer left and returns its
// image count.
func verifyCrashStore(t *testing.T, dir string, atLeast int) int {
	t.Helper()
	s, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	n := int(st.Images)
	if n < atLeast || n%crashBatch != 0 {
		t.Fatalf("store holds %d images; the writer reported %d committed, batches of %d", n, atLeast, crashBatch)
	}
	if st.Ledger[StatusOK] != int64(n) || len(st.Ledger) != 1 {
		t.Fatalf("ledger %v for %d images", st.Ledger, n)
	}
	i := 0
	err = s.Keys(func(k string) error {
		if k != crashKey(i) {
			return fmt.Errorf("key #%d is %q, want %q", i, k, crashKey(i))
		}
		img, ok, err := s.Get(k)
		if err != nil || !ok {
			return fmt.Errorf("Get(%q): %v %v", k, ok, err)
		}
		if string(img) != string(content(k, crashSize(k))) {
			return fmt.Errorf("key %q: stored bytes differ from what was written", k)
		}
		e, ok, err := s.Ledger(k)
		if err != nil || !ok || e.Status != StatusOK || e.SHA256 != shaHex(img) || e.Bytes != int64(len(img)) {
			return fmt.Errorf("key %q: ledger %+v (ok %v, err %v) does not match the image", k, e, ok, err)
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != n {
		t.Fatalf("Keys visited %d keys, Stats says %d", i, n)
	}
	return n
}

// TestReadOnlyProcessWhileWriterOpen opens the store read-only in another
// process while this process has it open for writing, and grows the map
// past the reader's mapping between two reads (the reader must adopt it).
func TestReadOnlyProcessWhileWriterOpen(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := newDir(t)
	w := openT(t, dir, Options{InitialMapSize: 1 << 20})
	write := func(from, to, size int) {
		var b Batch
		for i := from; i < to; i++ {
			k := crashKey(i)
			b.PutImage(k, content(k, size), LedgerEntry{})
		}
		commitT(t, w, &b)
	}
	write(0, 10, 1000)

	cmd := helperCmd(t, "reader", dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("reader did not start: %q", lines.Text())
	}
	check := func() map[string]int64 {
		t.Helper()
		if _, err := io.WriteString(stdin, "check\n"); err != nil {
			t.Fatal(err)
		}
		if !lines.Scan() {
			cmd.Wait()
			t.Fatalf("reader died: %v", lines.Err())
		}
		var m map[string]int64
		if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
			t.Fatalf("reader said %q", lines.Text())
		}
		return m
	}
	wantSame := func(m map[string]int64) {
		t.Helper()
		st, err := w.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if m["images"] != st.Images || m["bytes"] != st.Bytes || m["bad"] != 0 {
			t.Fatalf("reader sees %v, writer %+v", m, st)
		}
	}
	first := check()
	wantSame(first)
	write(10, 10+20*16, 64<<10) // 20 MiB: the map grows from 1 MiB
	second := check()
	wantSame(second)
	if second["map_size"] <= first["map_size"] || second["images"] != 330 {
		t.Fatalf("reader did not follow the grown map: before %v, after %v", first, second)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("reader exited with %v", err)
	}
	if !strings.Contains(fmt.Sprint(cmd.ProcessState), "exit status 0") {
		t.Fatalf("reader: %v", cmd.ProcessState)
	}
}
