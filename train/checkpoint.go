package train

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"unsafe"

	"github.com/mmpipe/mmpipe/store"
)

// Checkpoint file format (".ckpt"), version 1. All integers little-endian.
//
//	offset 0   8 bytes   magic "MMPCKPT1"
//	offset 8   uint64    H, the length of the JSON header
//	offset 16  H bytes   JSON header (CheckpointHeader): format, model, the
//	                     trainer state (epoch, batch, RNG state, early-stopping
//	                     state, history) and the tensor directory: name, dtype
//	                     ("float32" or "int64"), shape, byte offset relative
//	                     to the start of the data section, byte length
//	16+H       ...       data section: the tensors' raw little-endian values,
//	                     back to back in directory order
//	end-32     32 bytes  SHA-256 of every preceding byte
//
// A checkpoint holds everything a resumed run needs: the model's parameters
// and optimiser state (moments and step counts, as tensors) and the RNG
// state. Files are written to a temporary name, synced and renamed into
// place. Python reads one with numpy: parse the header, then
// np.frombuffer(data, "<f4", count, offset).
const (
	checkpointMagic  = "MMPCKPT1"
	CheckpointFormat = "mmpipe-checkpoint/1"
)

// Tensor is a named array of a model's state. Exactly one of F32 and I64
// holds the values, len = product of Shape.
type Tensor struct {
	Name  string
	Shape []int
	F32   []float32
	I64   []int64
}

// F32Tensor wraps float32 values (aliased, not copied).
func F32Tensor(name string, data []float32, shape ...int) Tensor {
	return Tensor{Name: name, Shape: shape, F32: data}
}

// I64Tensor wraps int64 values (aliased, not copied).
func I64Tensor(name string, data []int64, shape ...int) Tensor {
	return Tensor{Name: name, Shape: shape, I64: data}
}

// ScalarI64 wraps a single int64 (aliased) as a one-element tensor.
func ScalarI64(name string, p *int64) Tensor {
	return Tensor{Name: name, Shape: []int{1}, I64: unsafeSlice(p)}
}

func unsafeSlice(p *int64) []int64 { return unsafe.Slice(p, 1) }

func (t Tensor) dtype() string {
	if t.I64 != nil {
		return "int64"
	}
	return "float32"
}

func (t Tensor) len() int {
	if t.I64 != nil {
		return len(t.I64)
	}
	return len(t.F32)
}

func (t Tensor) elems() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// TensorInfo is one entry of a checkpoint's tensor directory.
type TensorInfo struct {
	Name   string `json:"name"`
	DType  string `json:"dtype"`
	Shape  []int  `json:"shape"`
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
}

// CheckpointHeader is a checkpoint's JSON header.
type CheckpointHeader struct {
	Format  string       `json:"format"`
	Model   string       `json:"model"`
	Created string       `json:"created"`
	State   TrainState   `json:"state"`
	Tensors []TensorInfo `json:"tensors"`
}

// WriteCheckpoint writes tensors and the header atomically to path.
func WriteCheckpoint(path string, h CheckpointHeader, tensors []Tensor) error {
	h.Format = CheckpointFormat
	h.Tensors = h.Tensors[:0]
	off := int64(0)
	names := map[string]bool{}
	for _, t := range tensors {
		if names[t.Name] {
			return fmt.Errorf("checkpoint %s: tensor %q twice", path, t.Name)
		}
		names[t.Name] = true
		if t.elems() != t.len() {
			return fmt.Errorf("checkpoint %s: tensor %q has %d values for shape %v", path, t.Name, t.len(), t.Shape)
		}
		size := int64(t.len()) * map[string]int64{"float32": 4, "int64": 8}[t.dtype()]
		h.Tensors = append(h.Tensors, TensorInfo{Name: t.Name, DType: t.dtype(), Shape: t.Shape, Offset: off, Bytes: size})
		off += size
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	af, err := store.OpenAtomicFile(path)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer af.Abort()
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(af, sum), 1<<20)
	var buf []byte
	buf = append(buf, checkpointMagic...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(hdr)))
	buf = append(buf, hdr...)
	if _, err := bw.Write(buf); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	for _, t := range tensors {
		if err := writeValues(bw, t); err != nil {
			return fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	if _, err := af.Write(sum.Sum(nil)); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return af.Commit()
}

func writeValues(w io.Writer, t Tensor) error {
	const chunk = 1 << 14
	buf := make([]byte, 0, chunk*8)
	if t.I64 != nil {
		for i := 0; i < len(t.I64); i += chunk {
			buf = buf[:0]
			for _, v := range t.I64[i:min(i+chunk, len(t.I64))] {
				buf = binary.LittleEndian.AppendUint64(buf, uint64(v))
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}
	for i := 0; i < len(t.F32); i += chunk {
		buf = buf[:0]
		for _, v := range t.F32[i:min(i+chunk, len(t.F32))] {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// Checkpoint is a checkpoint read into memory.
type Checkpoint struct {
	Header  CheckpointHeader
	Tensors map[string]Tensor
	// SHA256 is the checksum of the file (its trailing 32 bytes), hex.
	SHA256 string
}

// CopyTensor copies the checkpoint's tensor name into dst, which must have
// the same dtype and shape; it is how a model transfers parameters from
// an --init checkpoint.
func (ck *Checkpoint) CopyTensor(dst Tensor) error {
	s, ok := ck.Tensors[dst.Name]
	if !ok {
		return fmt.Errorf("checkpoint has no tensor %q (model %s)", dst.Name, ck.Header.Model)
	}
	if s.dtype() != dst.dtype() || !slices.Equal(s.Shape, dst.Shape) {
		return fmt.Errorf("checkpoint tensor %q is %s%v, the model wants %s%v (a different config?)", dst.Name, s.dtype(), s.Shape, dst.dtype(), dst.Shape)
	}
	if dst.I64 != nil {
		copy(dst.I64, s.I64)
	} else {
		copy(dst.F32, s.F32)
	}
	return nil
}

// ReadCheckpoint reads and verifies a checkpoint file.
func ReadCheckpoint(path string) (*Checkpoint, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("checkpoint %s: %s", path, fmt.Sprintf(format, args...))
	}
	if len(data) < 16+32 || string(data[:8]) != checkpointMagic {
		return nil, bad("not an mmpipe checkpoint (no %s magic)", checkpointMagic)
	}
	body, tail := data[:len(data)-32], data[len(data)-32:]
	if s := sha256.Sum256(body); !bytes.Equal(s[:], tail) {
		return nil, bad("checksum mismatch: the file is truncated or corrupt")
	}
	hl := binary.LittleEndian.Uint64(data[8:16])
	if hl > uint64(len(body)-16) {
		return nil, bad("header length %d exceeds the file", hl)
	}
	ck := &Checkpoint{Tensors: map[string]Tensor{}, SHA256: hex.EncodeToString(tail)}
	if err := json.Unmarshal(body[16:16+hl], &ck.Header); err != nil {
		return nil, bad("header: %v", err)
	}
	if ck.Header.Format != CheckpointFormat {
		return nil, bad("format %q, want %q", ck.Header.Format, CheckpointFormat)
	}
	sec := body[16+hl:]
	for _, ti := range ck.Header.Tensors {
		if ti.Offset < 0 || ti.Bytes < 0 || ti.Offset+ti.Bytes > int64(len(sec)) {
			return nil, bad("tensor %q lies outside the data section", ti.Name)
		}
		raw := sec[ti.Offset : ti.Offset+ti.Bytes]
		t := Tensor{Name: ti.Name, Shape: ti.Shape}
		switch ti.DType {
		case "float32":
			t.F32 = make([]float32, len(raw)/4)
			for i := range t.F32 {
				t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		case "int64":
			t.I64 = make([]int64, len(raw)/8)
			for i := range t.I64 {
				t.I64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		default:
			return nil, bad("tensor %q has dtype %q", ti.Name, ti.DType)
		}
		if t.elems() != t.len() {
			return nil, bad("tensor %q has %d values for shape %v", ti.Name, t.len(), t.Shape)
		}
		ck.Tensors[ti.Name] = t
	}
	return ck, nil
}

// LoadInto copies the checkpoint's tensors into dst (a model's State()),
// matching names, dtypes and shapes exactly; every tensor of dst must be
// present.
func (ck *Checkpoint) LoadInto(dst []Tensor) error {
	for _, d := range dst {
		if err := ck.CopyTensor(d); err != nil {
			return err
		}
	}
	if len(ck.Tensors) != len(dst) {
		return fmt.Errorf("checkpoint has %d tensors, the model %d", len(ck.Tensors), len(dst))
	}
	return nil
}

// RestoreCheckpoint loads the checkpoint at path into dst (a model's
// State()) without holding the file in memory: a first pass verifies the
// SHA-256 of the whole file, a second decodes each tensor straight into
// its destination in 1 MiB chunks, so restoring a model needs no memory
// beyond the model itself (ReadCheckpoint + LoadInto needs the file twice
// over). The checkpoint must be of model (unless model is ""); names,
// dtypes and shapes must match exactly and every tensor of dst must be
// present. dst is untouched when any check fails.
func RestoreCheckpoint(path, model string, dst []Tensor) (*CheckpointHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("checkpoint %s: %s", path, fmt.Sprintf(format, args...))
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	size := st.Size()
	var head [16]byte
	if size < 16+32 {
		return nil, bad("not an mmpipe checkpoint (no %s magic)", checkpointMagic)
	}
	if _, err := io.ReadFull(f, head[:]); err != nil {
		return nil, bad("%v", err)
	}
	if string(head[:8]) != checkpointMagic {
		return nil, bad("not an mmpipe checkpoint (no %s magic)", checkpointMagic)
	}
	// Pass 1: the checksum of everything before the last 32 bytes.
	sum := sha256.New()
	if _, err := io.CopyBuffer(sum, io.NewSectionReader(f, 0, size-32), make([]byte, 1<<20)); err != nil {
		return nil, bad("%v", err)
	}
	var tail [32]byte
	if _, err := f.ReadAt(tail[:], size-32); err != nil {
		return nil, bad("%v", err)
	}
	if !bytes.Equal(sum.Sum(nil), tail[:]) {
		return nil, bad("checksum mismatch: the file is truncated or corrupt")
	}
	hl := binary.LittleEndian.Uint64(head[8:16])
	if hl > uint64(size-16-32) {
		return nil, bad("header length %d exceeds the file", hl)
	}
	hdr := make([]byte, hl)
	if _, err := f.ReadAt(hdr, 16); err != nil {
		return nil, bad("header: %v", err)
	}
	var h CheckpointHeader
	if err := json.Unmarshal(hdr, &h); err != nil {
		return nil, bad("header: %v", err)
	}
	if h.Format != CheckpointFormat {
		return nil, bad("format %q, want %q", h.Format, CheckpointFormat)
	}
	if model != "" && h.Model != model {
		return nil, bad("a %s checkpoint, not %s", h.Model, model)
	}
	// Check the directory against dst before writing anything.
	secStart, secLen := int64(16+hl), size-32-int64(16+hl)
	dir := make(map[string]TensorInfo, len(h.Tensors))
	for _, ti := range h.Tensors {
		if ti.Offset < 0 || ti.Bytes < 0 || ti.Offset+ti.Bytes > secLen {
			return nil, bad("tensor %q lies outside the data section", ti.Name)
		}
		dir[ti.Name] = ti
	}
	for _, d := range dst {
		ti, ok := dir[d.Name]
		if !ok {
			return nil, fmt.Errorf("checkpoint has no tensor %q (model %s)", d.Name, h.Model)
		}
		if ti.DType != d.dtype() || !slices.Equal(ti.Shape, d.Shape) {
			return nil, fmt.Errorf("checkpoint tensor %q is %s%v, the model wants %s%v (a different config?)", d.Name, ti.DType, ti.Shape, d.dtype(), d.Shape)
		}
		width := int64(4)
		if d.I64 != nil {
			width = 8
		}
		if ti.Bytes != int64(d.len())*width || d.elems() != d.len() {
			return nil, bad("tensor %q has %d bytes for shape %v", ti.Name, ti.Bytes, ti.Shape)
		}
	}
	if len(dir) != len(dst) {
		return nil, fmt.Errorf("checkpoint has %d tensors, the model %d", len(dir), len(dst))
	}
	// Pass 2: decode each tensor in place.
	buf := make([]byte, 1<<20)
	for _, d := range dst {
		ti := dir[d.Name]
		r := io.NewSectionReader(f, secStart+ti.Offset, ti.Bytes)
		for i := 0; ; {
			n, err := io.ReadFull(r, buf)
			chunk := buf[:n]
			if d.I64 != nil {
				for ; len(chunk) >= 8; chunk = chunk[8:] {
					d.I64[i] = int64(binary.LittleEndian.Uint64(chunk))
					i++
				}
			} else {
				for ; len(chunk) >= 4; chunk = chunk[4:] {
					d.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(chunk))
					i++
				}
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				return nil, bad("tensor %q: %v", d.Name, err)
			}
		}
	}
	return &h, nil
}
