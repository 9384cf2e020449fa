package store

import (
	"encoding/binary"
	"fmt"
)

// checkIPCFooter walks the footer of an Arrow IPC file (a flatbuffer at the
// end of data) far enough to make sure that every vector the IPC reader
// sizes an allocation by (the schema's fields and their children, custom
// metadata, the record batch blocks) fits in the footer. arrow-go trusts
// these lengths: a corrupt one makes it allocate hundreds of gigabytes, a
// fatal error no recover catches.
func checkIPCFooter(data []byte) error {
	const magic = len("ARROW1")
	if len(data) < 2*magic+2+4 {
		return fmt.Errorf("%d bytes: too short for an Arrow IPC file", len(data))
	}
	end := len(data) - magic - 4
	n := int64(int32(binary.LittleEndian.Uint32(data[end:])))
	if n <= 0 || n > int64(end-magic) {
		return fmt.Errorf("footer length %d outside the file", n)
	}
	fb := flatbuf(data[end-int(n) : end])
	root, err := fb.root()
	if err != nil {
		return fmt.Errorf("footer: %w", err)
	}
	// Footer: 1 schema, 2 dictionaries (Block structs), 3 recordBatches.
	for _, f := range []int{2, 3} {
		if _, _, err := fb.vector(root, f, 24); err != nil {
			return fmt.Errorf("footer: %w", err)
		}
	}
	schema, ok, err := fb.table(root, 1)
	if err != nil || !ok {
		return fmt.Errorf("footer: schema: %v", err)
	}
	// Schema: 0 endianness, 1 fields, 2 custom_metadata. A big-endian file
	// would be byte-swapped in place, in a read-only mapping: a fault.
	if p, ok, err := fb.field(schema, 0); err != nil {
		return fmt.Errorf("footer: schema: %w", err)
	} else if ok {
		if p+2 > len(fb) {
			return fmt.Errorf("footer: schema endianness outside the footer")
		}
		if binary.LittleEndian.Uint16(fb[p:]) != 0 {
			return fmt.Errorf("big-endian Arrow file (mmpipe maps feature files in place, little-endian only)")
		}
	}
	// Schema: 1 fields, 2 custom_metadata.
	if err := fb.keyValues(schema, 2); err != nil {
		return fmt.Errorf("footer: schema metadata: %w", err)
	}
	return fb.fields(schema, 1, 0)
}

// flatbuf reads the few flatbuffer constructs checkIPCFooter needs, with
// every offset checked.
type flatbuf []byte

func (b flatbuf) u32(pos int) (int, error) {
	if pos < 0 || pos+4 > len(b) {
		return 0, fmt.Errorf("offset %d outside %d bytes", pos, len(b))
	}
	return int(binary.LittleEndian.Uint32(b[pos:])), nil
}

// root returns the position of the root table.
func (b flatbuf) root() (int, error) {
	return b.u32(0)
}

// field returns the position of field i of the table at t (ok false when
// the field is absent).
func (b flatbuf) field(t, i int) (int, bool, error) {
	if t < 0 || t+4 > len(b) {
		return 0, false, fmt.Errorf("table at %d outside %d bytes", t, len(b))
	}
	vt := t - int(int32(binary.LittleEndian.Uint32(b[t:])))
	if vt < 0 || vt+4 > len(b) {
		return 0, false, fmt.Errorf("vtable at %d outside %d bytes", vt, len(b))
	}
	size := int(binary.LittleEndian.Uint16(b[vt:]))
	at := vt + 4 + 2*i
	if at+2 > vt+size {
		return 0, false, nil
	}
	if at+2 > len(b) {
		return 0, false, fmt.Errorf("vtable at %d outside %d bytes", vt, len(b))
	}
	off := int(binary.LittleEndian.Uint16(b[at:]))
	if off == 0 {
		return 0, false, nil
	}
	return t + off, true, nil
}

// ref follows the offset-typed field i of the table at t.
func (b flatbuf) ref(t, i int) (int, bool, error) {
	p, ok, err := b.field(t, i)
	if err != nil || !ok {
		return 0, ok, err
	}
	o, err := b.u32(p)
	if err != nil {
		return 0, false, err
	}
	return p + o, true, nil
}

// table returns the position of the table in field i of the table at t.
func (b flatbuf) table(t, i int) (int, bool, error) {
	return b.ref(t, i)
}

// vector returns the element position and length of the vector in field i
// of the table at t, checking that length elements of elemSize bytes fit.
func (b flatbuf) vector(t, i, elemSize int) (int, int, error) {
	v, ok, err := b.ref(t, i)
	if err != nil || !ok {
		return 0, 0, err
	}
	n, err := b.u32(v)
	if err != nil {
		return 0, 0, err
	}
	if int64(n)*int64(elemSize) > int64(len(b)-v-4) {
		return 0, 0, fmt.Errorf("vector of %d elements of %d bytes at %d does not fit in %d bytes", n, elemSize, v, len(b))
	}
	return v + 4, n, nil
}

// elem returns the table element k of a vector of offsets at p.
func (b flatbuf) elem(p, k int) (int, error) {
	o, err := b.u32(p + 4*k)
	if err != nil {
		return 0, err
	}
	return p + 4*k + o, nil
}

// keyValues checks the KeyValue vector in field i of the table at t.
func (b flatbuf) keyValues(t, i int) error {
	_, _, err := b.vector(t, i, 4)
	return err
}

// fields checks the Field vector in field i of the table at t and, in each
// field, its custom metadata (6) and children (5), to a bounded depth.
func (b flatbuf) fields(t, i, depth int) error {
	if depth > 64 {
		return fmt.Errorf("fields nested more than 64 deep")
	}
	p, n, err := b.vector(t, i, 4)
	if err != nil {
		return err
	}
	for k := range n {
		f, err := b.elem(p, k)
		if err != nil {
			return err
		}
		if err := b.keyValues(f, 6); err != nil {
			return fmt.Errorf("field %d metadata: %w", k, err)
		}
		if err := b.fields(f, 5, depth+1); err != nil {
			return fmt.Errorf("field %d: %w", k, err)
		}
	}
	return nil
}
