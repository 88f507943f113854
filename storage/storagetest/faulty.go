package storagetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"github.com/pitr-dev/pitr/storage"
)

// Op names a Storage method, for Faulty.
type Op string

// The Storage methods.
const (
	OpPut    Op = "put"
	OpCreate Op = "create"
	OpGet    Op = "get" // Get and GetRange
	OpStat   Op = "stat"
	OpList   Op = "list"
	OpDelete Op = "delete"
)

// ErrDown is wrapped by every call to a Faulty that is down. Like a refused
// TCP dial, it also matches errors.Is(err, syscall.ECONNREFUSED).
var ErrDown error = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

var _ storage.Storage = (*Faulty)(nil)

// Faulty wraps a Storage and fails calls as a test scripts it (see kopia's
// internal/blobtesting/faulty.go). It is safe for concurrent use. Scripted
// failures of one method are used up in the order they were added; a down
// store fails every call without using them up.
type Faulty struct {
	inner storage.Storage

	mu     sync.Mutex
	down   bool
	faults map[Op][]fault
	calls  map[Op]int
}

type fault struct {
	err   error
	after int64 // Put only: bytes the wrapped store reads before err; -1: fail before calling it
}

// NewFaulty wraps s; until told otherwise it passes every call through.
func NewFaulty(s storage.Storage) *Faulty {
	return &Faulty{inner: s, faults: make(map[Op][]fault), calls: make(map[Op]int)}
}

// Fail makes the next n calls of op return err (wrapped with the method and
// key) without reaching the wrapped store.
func (f *Faulty) Fail(op Op, n int, err error) {
	f.add(op, n, fault{err: err, after: -1})
}

// FailPut is Fail(OpPut, n, err).
func (f *Faulty) FailPut(n int, err error) { f.Fail(OpPut, n, err) }

// FailPutAfter makes the next n Puts fail after the wrapped store has read
// bytes bytes of the object, like a connection lost mid-upload: the wrapped
// Put sees the read fail with err and must leave no object behind.
func (f *Faulty) FailPutAfter(n int, bytes int64, err error) {
	f.add(OpPut, n, fault{err: err, after: bytes})
}

func (f *Faulty) add(op Op, n int, ft fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		f.faults[op] = append(f.faults[op], ft)
	}
}

// SetDown makes every call fail with ErrDown while down is true.
func (f *Faulty) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// Calls returns how many times op was called, failed calls included.
func (f *Faulty) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// next counts a call of op and returns the fault it must suffer, if any.
func (f *Faulty) next(op Op) (fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if f.down {
		return fault{err: ErrDown, after: -1}, true
	}
	q := f.faults[op]
	if len(q) == 0 {
		return fault{}, false
	}
	f.faults[op] = q[1:]
	return q[0], true
}

// Put passes the call through unless a fault is due.
func (f *Faulty) Put(ctx context.Context, key string, r io.Reader) error {
	ft, ok := f.next(OpPut)
	switch {
	case !ok:
		return f.inner.Put(ctx, key, r)
	case ft.after >= 0:
		return f.inner.Put(ctx, key, &failAfter{r: r, left: ft.after, err: ft.err})
	default:
		return fmt.Errorf("put %s: %w", key, ft.err)
	}
}

// Create passes the call through unless a fault is due; FailPutAfter
// faults are Put's alone.
func (f *Faulty) Create(ctx context.Context, key string, r io.Reader) error {
	ft, ok := f.next(OpCreate)
	switch {
	case !ok:
		return f.inner.Create(ctx, key, r)
	case ft.after >= 0:
		return f.inner.Create(ctx, key, &failAfter{r: r, left: ft.after, err: ft.err})
	default:
		return fmt.Errorf("create %s: %w", key, ft.err)
	}
}

// GetRange passes the call through unless a fault is due (of OpGet).
func (f *Faulty) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if ft, ok := f.next(OpGet); ok {
		return nil, fmt.Errorf("get %s: %w", key, ft.err)
	}
	return f.inner.GetRange(ctx, key, offset, length)
}

// Get passes the call through unless a fault is due.
func (f *Faulty) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if ft, ok := f.next(OpGet); ok {
		return nil, fmt.Errorf("get %s: %w", key, ft.err)
	}
	return f.inner.Get(ctx, key)
}

// Stat passes the call through unless a fault is due.
func (f *Faulty) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if ft, ok := f.next(OpStat); ok {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, ft.err)
	}
	return f.inner.Stat(ctx, key)
}

// List passes the call through unless a fault is due; a faulty List fails
// before calling fn.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if ft, ok := f.next(OpList); ok {
		return fmt.Errorf("list %s: %w", prefix, ft.err)
	}
	return f.inner.List(ctx, prefix, fn)
}

// Delete passes the call through unless a fault is due.
func (f *Faulty) Delete(ctx context.Context, key string) error {
	if ft, ok := f.next(OpDelete); ok {
		return fmt.Errorf("delete %s: %w", key, ft.err)
	}
	return f.inner.Delete(ctx, key)
}

// failAfter reads up to left bytes from r, then fails with err.
type failAfter struct {
	r    io.Reader
	left int64
	err  error
}

func (fa *failAfter) Read(p []byte) (int, error) {
	if fa.left <= 0 {
		return 0, fa.err
	}
	if int64(len(p)) > fa.left {
		p = p[:fa.left]
	}
	n, err := fa.r.Read(p)
	fa.left -= int64(n)
	if err == io.EOF {
		// The object was no longer than the fault's offset: fail at its end
		// rather than let a Put that was meant to fail succeed.
		return n, fa.err
	}
	return n, err
}
