// Package s3 stores objects in an S3 bucket: AWS S3, MinIO and other
// S3-compatible stores, through aws-sdk-go-v2.
//
// Integrity: every PutObject and UploadPart carries a checksum we compute
// from the bytes we send, so the store refuses bytes damaged on the way
// (BadDigest), and Put returns nil only once PutObject or
// CompleteMultipartUpload succeeded. UploadPart carries Content-MD5.
// PutObject carries a CRC32C (x-amz-checksum-crc32c; about a tenth of
// MD5's CPU, 31 ms per incompressible WAL segment) and, until the store has
// shown that it checks CRC32C, Content-MD5 as well: AWS S3 checks it (no
// Content-MD5 there), and so does a store that answers a PutObject with the
// same x-amz-checksum-crc32c (MinIO does); a store that ignores the header
// keeps getting Content-MD5, which every S3-compatible store checks. With
// Object Lock, PutObject keeps Content-MD5 (S3 asks for it there).
//
// Atomicity: S3 shows an object only once PutObject or
// CompleteMultipartUpload succeeds. Put aborts a multipart upload on any
// error or cancellation. If pitr dies mid-upload, the incomplete upload
// stays invisible to Get and List but is billed until it is aborted: Put
// reports each upload it starts (storage.WithUploadStarted) so that a
// later process can abort it (storage.Uploads), and a bucket lifecycle rule
// with AbortIncompleteMultipartUpload removes whatever is left.
//
// Create-only: Create sends If-None-Match: * with PutObject, and with
// CompleteMultipartUpload for an object of several parts, so the store
// itself refuses to replace an object (412 PreconditionFailed, or 409
// ConditionalRequestConflict while another conditional write of the key is
// in flight); both give storage.ErrExist. AWS S3 and MinIO support it. A
// store that ignores the header would silently overwrite: for those, set
// Options.NoConditionalWrites, and Create checks with HeadObject first,
// which two writers can race.
//
// Timeouts: no request waits on a silent store for longer than
// Options.Timeout, whether connecting, in the TLS handshake, for the
// response's headers, or with a body that stopped moving in either
// direction (see stallConn). A transfer that keeps moving is never cut
// short: a base backup part may take an hour. Bounding a whole command is
// the caller's job, with its context.
//
// Errors: answers that retrying cannot fix (403, a wrong secret, a missing
// bucket) wrap storage.ErrPermanent; see permanent.
//
// Object Lock: with Options.ObjectLockMode, new objects are locked on
// upload, Store is a storage.Locker, and Delete removes versions by id so
// that a versioned bucket never keeps a hidden object; see lock.go.
package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/storage"
)

// Limits of S3 multipart uploads.
const (
	MinPartSize     = 5 << 20
	maxPartSize     = 5 << 30
	maxParts        = 10000
	DefaultPartSize = 16 << 20
)

const (
	defaultConcurrency = 4
	defaultMaxAttempts = 5
	// DefaultTimeout is Options.Timeout's default.
	DefaultTimeout = 30 * time.Second
)

// Options configures New.
type Options struct {
	Bucket string
	// Prefix is prepended to every key: with "some/prefix", key "a/b" is
	// stored as "some/prefix/a/b". Leading and trailing slashes are ignored.
	Prefix string
	// Endpoint is the URL of an S3-compatible store, e.g.
	// "http://127.0.0.1:9000" for MinIO; empty for AWS.
	Endpoint string
	// Region defaults to the SDK's (AWS_REGION, the profile), then to
	// "us-east-1" when Endpoint is set.
	Region string
	// ForcePathStyle addresses the bucket in the path, not the host name;
	// most S3-compatible stores need it.
	ForcePathStyle bool
	// SSE is the server-side encryption of new objects: "", "AES256" or
	// "aws:kms" (with SSEKMSKeyID, or the bucket's default KMS key).
	SSE         string
	SSEKMSKeyID string
	// StorageClass of new objects, e.g. "STANDARD_IA"; "" for the bucket's
	// default.
	StorageClass string
	// PartSize is the size of multipart upload parts (default 16 MiB, at
	// least 5 MiB). An object holds at most 10,000 parts, so it also caps
	// the object size (156 GiB at 16 MiB). Objects up to PartSize are
	// stored with a single PutObject.
	PartSize int64
	// Concurrency is how many parts one Put uploads at once (default 4).
	// A Put holds at most Concurrency+1 buffers of PartSize.
	Concurrency int
	// MaxAttempts bounds the SDK's attempts per request (default 5).
	// Connection errors, timeouts, 5xx responses and throttling are retried
	// with exponential backoff; 403 and other permanent answers are not.
	MaxAttempts int
	// Timeout bounds every wait on the network (default 30s): connecting,
	// the TLS handshake, the response's headers, and any stretch with no
	// byte sent or received while a request or response body moves. A
	// stalled attempt fails with a timeout error and is retried like a
	// dropped connection. It does not cap a transfer that keeps moving, and
	// it does not apply to HTTPClient.
	Timeout time.Duration
	// HTTPClient replaces the SDK's HTTP client for S3 requests (tests). It
	// is used as is: AWS_CA_BUNDLE, which the SDK's client honors, does not
	// apply to it.
	HTTPClient aws.HTTPClient
	// Credentials replaces the SDK's standard chain (environment, shared
	// profiles, web identity, container and instance roles).
	Credentials aws.CredentialsProvider
	// NoConditionalWrites is for S3-compatible stores that do not honor
	// If-None-Match on writes: Create then checks for the key with
	// HeadObject before an ordinary Put, a check two writers can race.
	NoConditionalWrites bool
	// CRC32CCache, when set, is a file that remembers, across processes,
	// that the store checks x-amz-checksum-crc32c (it echoed ours), so
	// that PutObject leaves out Content-MD5 from the first request on: a
	// process that stores one WAL segment never got past the first
	// PutObject, which learns it. It names the endpoint and bucket; a
	// file naming others is ignored. wal-push keeps it in its spool.
	CRC32CCache string
	// ObjectLockMode locks every new object with S3 Object Lock:
	// "governance" or "compliance" ("" for none), for ObjectLockDays (at
	// least 1) from its upload. The bucket must have Object Lock enabled.
	// See lock.go.
	ObjectLockMode string
	ObjectLockDays int
}

var _ storage.Storage = (*Store)(nil)

// Store is a storage.Storage in an S3 bucket.
type Store struct {
	client      *s3.Client
	bucket      string
	prefix      string // "" or ending in "/"
	sse         types.ServerSideEncryption
	kmsKeyID    *string
	class       types.StorageClass
	partSize    int
	concurrency int
	timeout     time.Duration
	noCond      bool                 // Options.NoConditionalWrites
	bufs        sync.Pool            // of *[]byte, partSize long
	lockMode    types.ObjectLockMode // Options.ObjectLockMode; "" for none
	lockDays    int
	now         func() time.Time
	// crcChecked: the store is known to check x-amz-checksum-crc32c, so
	// PutObject may leave out Content-MD5 (see the package comment).
	crcChecked atomic.Bool
	crcCache   string // Options.CRC32CCache
	crcCacheID string // its content: endpoint and bucket
	tls        bool   // requests go over https
}

// New returns a store for opts.Bucket. It does not contact the store.
func New(ctx context.Context, opts Options) (*Store, error) {
	s, err := newStore(opts)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	maxAttempts := opts.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = defaultMaxAttempts
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				// The default retry quota is shared by every request of
				// the client: after a long outage it runs dry, and then
				// requests fail at the first error without retrying. A
				// daemon outlives outages; backoff alone is enough.
				o.RateLimiter = ratelimit.None
			})
		}),
		// The SDK's default CRC32 trailers (aws-chunked bodies) are not
		// understood by every S3-compatible store; Content-MD5 covers
		// integrity.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		config.WithLogger(logging.Nop{}), // storage reports through errors, never logs
	}
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(opts.Credentials))
	}
	// A BuildableClient, so the loader can still add AWS_CA_BUNDLE to it.
	loadOpts = append(loadOpts, config.WithHTTPClient(httpClient(s.timeout)))
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load aws config: %w", err)
	}
	if cfg.Region == "" {
		if opts.Endpoint == "" {
			return nil, errors.New("s3: no region: set the region or AWS_REGION")
		}
		cfg.Region = "us-east-1" // what MinIO and most S3-compatible stores expect
	}
	s.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.ForcePathStyle
		if opts.HTTPClient != nil {
			o.HTTPClient = opts.HTTPClient // as is: the loader would refuse it with AWS_CA_BUNDLE set
		}
	})
	return s, nil
}

// newStore checks opts and fills in everything but the client.
func newStore(opts Options) (*Store, error) {
	if opts.Bucket == "" {
		return nil, errors.New("no bucket")
	}
	prefix := strings.Trim(opts.Prefix, "/")
	if prefix != "" {
		if !storage.ValidKey(prefix) {
			return nil, fmt.Errorf("invalid prefix %q", opts.Prefix)
		}
		prefix += "/"
	}
	if opts.Endpoint != "" {
		u, err := url.Parse(opts.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("invalid endpoint %q: want http(s)://host[:port]", opts.Endpoint)
		}
	}
	s := &Store{
		bucket:      opts.Bucket,
		prefix:      prefix,
		partSize:    DefaultPartSize,
		concurrency: defaultConcurrency,
		class:       types.StorageClass(opts.StorageClass),
		noCond:      opts.NoConditionalWrites,
		now:         time.Now,
	}
	s.crcChecked.Store(opts.Endpoint == "") // AWS S3 checks it
	if opts.CRC32CCache != "" {
		s.crcCache, s.crcCacheID = opts.CRC32CCache, opts.Endpoint+" "+opts.Bucket+"\n"
		if b, err := os.ReadFile(s.crcCache); err == nil && string(b) == s.crcCacheID {
			s.crcChecked.Store(true)
		}
	}
	s.tls = opts.Endpoint == "" || strings.HasPrefix(opts.Endpoint, "https://")
	mode, err := ParseLockMode(opts.ObjectLockMode)
	if err != nil {
		return nil, err
	}
	switch {
	case mode != "" && opts.ObjectLockDays < 1:
		return nil, fmt.Errorf("object lock days %d: want at least 1", opts.ObjectLockDays)
	case mode == "" && opts.ObjectLockDays != 0:
		return nil, errors.New("object lock days without an object lock mode")
	}
	s.lockMode, s.lockDays = mode, opts.ObjectLockDays
	switch opts.SSE {
	case "":
		if opts.SSEKMSKeyID != "" {
			return nil, errors.New("a KMS key id needs SSE aws:kms")
		}
	case string(types.ServerSideEncryptionAes256):
		if opts.SSEKMSKeyID != "" {
			return nil, errors.New("a KMS key id needs SSE aws:kms")
		}
		s.sse = types.ServerSideEncryptionAes256
	case string(types.ServerSideEncryptionAwsKms):
		s.sse = types.ServerSideEncryptionAwsKms
		if opts.SSEKMSKeyID != "" {
			s.kmsKeyID = aws.String(opts.SSEKMSKeyID)
		}
	default:
		return nil, fmt.Errorf("unknown SSE %q: want AES256 or aws:kms", opts.SSE)
	}
	if opts.PartSize != 0 {
		if opts.PartSize < MinPartSize || opts.PartSize > maxPartSize {
			return nil, fmt.Errorf("part size %d: want 5 MiB to 5 GiB", opts.PartSize)
		}
		s.partSize = int(opts.PartSize)
	}
	if opts.Concurrency > 0 {
		s.concurrency = opts.Concurrency
	}
	s.timeout = DefaultTimeout
	if opts.Timeout > 0 {
		s.timeout = opts.Timeout
	}
	s.bufs.New = func() any {
		b := make([]byte, s.partSize)
		return &b
	}
	return s, nil
}

// ParseURL splits "s3://bucket/some/prefix" into bucket and prefix
// ("some/prefix"; "" for "s3://bucket").
func ParseURL(rawURL string) (bucket, prefix string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", fmt.Errorf("parse s3 url: %w", err)
	}
	switch {
	case u.Scheme != "s3":
		return "", "", fmt.Errorf("parse s3 url %q: scheme is not s3", rawURL)
	case u.Host == "" || u.Opaque != "":
		return "", "", fmt.Errorf("parse s3 url %q: want s3://bucket/prefix", rawURL)
	case u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "":
		return "", "", fmt.Errorf("parse s3 url %q: unexpected user, port, query or fragment", rawURL)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" && !storage.ValidKey(prefix) {
		return "", "", fmt.Errorf("parse s3 url %q: invalid prefix", rawURL)
	}
	return u.Host, prefix, nil
}

// full returns the object key of key.
func (s *Store) full(key string) *string { return aws.String(s.prefix + key) }

// Put uploads r with a single PutObject if it fits in one part, else as a
// multipart upload.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("put: invalid key %q", key)
	}
	if err := s.put(ctx, key, r, nil); err != nil {
		return fmt.Errorf("put %s: %w", key, permanent(err))
	}
	return nil
}

// Create is Put with If-None-Match: * on the request that makes the object
// visible (see the package comment).
func (s *Store) Create(ctx context.Context, key string, r io.Reader) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("create: invalid key %q", key)
	}
	cond := aws.String("*")
	if s.noCond {
		cond = nil
		_, err := s.Stat(ctx, key)
		if err == nil {
			return fmt.Errorf("create %s: %w", key, storage.ErrExist)
		}
		if !errors.Is(err, storage.ErrNotExist) {
			return fmt.Errorf("create: %w", err)
		}
	}
	if err := s.put(ctx, key, r, cond); err != nil {
		return fmt.Errorf("create %s: %w", key, permanent(exists(err)))
	}
	return nil
}

// exists maps the answers to a refused conditional write to
// storage.ErrExist, keeping the store's error in the message.
func exists(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "PreconditionFailed", "ConditionalRequestConflict":
			return fmt.Errorf("%w: %v", storage.ErrExist, err)
		}
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed {
		return fmt.Errorf("%w: %v", storage.ErrExist, err)
	}
	return err
}

// put stores r; ifNoneMatch ("*" or nil) goes with the request that makes
// the object visible.
func (s *Store) put(ctx context.Context, key string, r io.Reader, ifNoneMatch *string) error {
	if f, ok := r.(*os.File); ok {
		if done, err := s.putFile(ctx, key, f, ifNoneMatch); done {
			return err
		}
	}
	if m, ok := r.(inMemory); ok && m.Len() <= s.partSize {
		// bytes.Reader and strings.Reader: the bytes are in memory
		// already; a part buffer would only copy them.
		start := m.Size() - int64(m.Len())
		return s.putSection(ctx, key, io.NewSectionReader(m, start, int64(m.Len())), ifNoneMatch)
	}
	first, err := s.readPart(ctx, r)
	if err != nil {
		return err
	}
	if !first.full {
		defer s.release(first)
		return s.putObject(ctx, key, first.bytes(), ifNoneMatch)
	}
	// A full first part: only the next read tells whether r ended there.
	second, err := s.readPart(ctx, r)
	if err != nil {
		s.release(first)
		return err
	}
	if second.n == 0 {
		s.release(second)
		defer s.release(first)
		return s.putObject(ctx, key, first.bytes(), ifNoneMatch)
	}
	return s.putMultipart(ctx, key, r, first, second, ifNoneMatch)
}

// part is a pooled buffer holding n bytes of the object.
type part struct {
	buf  *[]byte
	n    int
	full bool // n == partSize; r may have more
}

func (p part) bytes() []byte { return (*p.buf)[:p.n] }

func (s *Store) release(p part) { s.bufs.Put(p.buf) }

// readPart fills a buffer from r. Only io.EOF ends the object: any other
// error, io.ErrUnexpectedEOF from a truncated source included, fails it.
func (s *Store) readPart(ctx context.Context, r io.Reader) (part, error) {
	p := part{buf: s.bufs.Get().(*[]byte)}
	buf := *p.buf
	for p.n < len(buf) {
		if err := ctx.Err(); err != nil {
			s.release(p)
			return part{}, err
		}
		k, err := r.Read(buf[p.n:])
		p.n += k
		if err == io.EOF {
			return p, nil
		}
		if err != nil {
			s.release(p)
			return part{}, err
		}
	}
	p.full = true
	return p, nil
}

func contentMD5(b []byte) *string {
	sum := md5.Sum(b)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// putChecksums computes what PutObject of the bytes of sec carries: always
// a CRC32C, and Content-MD5 too unless the store is known to check CRC32C.
func (s *Store) putChecksums(sec *io.SectionReader) (crc, md5sum *string, err error) {
	c := crc32.New(castagnoli)
	w := io.Writer(c)
	var m hash.Hash
	if !s.crcChecked.Load() || s.lockMode != "" {
		m = md5.New()
		w = io.MultiWriter(c, m)
	}
	if _, err := io.Copy(w, io.NewSectionReader(sec, 0, sec.Size())); err != nil {
		return nil, nil, err
	}
	crc = aws.String(base64.StdEncoding.EncodeToString(c.Sum(nil)))
	if m != nil {
		md5sum = aws.String(base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return crc, md5sum, nil
}

func (s *Store) putObject(ctx context.Context, key string, data []byte, ifNoneMatch *string) error {
	return s.putSection(ctx, key, io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))), ifNoneMatch)
}

// putFile uploads a regular file that fits in one part straight from the
// file, without a part buffer (wal-push hands over sealed spool files: with
// eight uploads in flight, buffering would cost eight parts of memory). It
// reports done=false, having read nothing, when the file is not such a file.
func (s *Store) putFile(ctx context.Context, key string, f *os.File, ifNoneMatch *string) (done bool, err error) {
	start, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size()-start > int64(s.partSize) {
		return false, nil
	}
	return true, s.putSection(ctx, key, io.NewSectionReader(f, start, fi.Size()-start), ifNoneMatch)
}

// inMemory is what *bytes.Reader and *strings.Reader offer.
type inMemory interface {
	io.ReaderAt
	Len() int
	Size() int64
}

// unsignedOverTLS is the option for requests with a body the store checks
// (Content-MD5 or CRC32C). The SDK signs the body's SHA-256 for PutObject
// and UploadPart, another 16 ms per 16 MiB, even over TLS. There the
// checksum already covers the body: UNSIGNED-PAYLOAD, as the SDK's own
// default (checksum trailers) sends over TLS. Over http the signature
// stays, the only protection against a changed body there.
func (s *Store) unsignedOverTLS() []func(*s3.Options) {
	if !s.tls {
		return nil
	}
	return []func(*s3.Options){s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)}
}

// putSection uploads a section with one PutObject, reading it twice (for
// the checksums, then the body) instead of copying it into a part buffer.
func (s *Store) putSection(ctx context.Context, key string, sec *io.SectionReader, ifNoneMatch *string) error {
	crc, md5sum, err := s.putChecksums(sec)
	if err != nil {
		return err
	}
	mode, until := s.lockInput()
	out, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:                    &s.bucket,
		Key:                       s.full(key),
		Body:                      sec, // seekable: the SDK rewinds it to retry
		ContentLength:             aws.Int64(sec.Size()),
		ChecksumCRC32C:            crc,
		ContentMD5:                md5sum,
		IfNoneMatch:               ifNoneMatch,
		ServerSideEncryption:      s.sse,
		SSEKMSKeyId:               s.kmsKeyID,
		StorageClass:              s.class,
		ObjectLockMode:            mode,
		ObjectLockRetainUntilDate: until,
	}, s.unsignedOverTLS()...)
	if err == nil && md5sum != nil && aws.ToString(out.ChecksumCRC32C) == *crc {
		if !s.crcChecked.Swap(true) { // it answered with our CRC32C: it checks it
			s.rememberCRC32C()
		}
	}
	return err
}

// rememberCRC32C writes Options.CRC32CCache; a failure only costs the
// next process Content-MD5 again.
func (s *Store) rememberCRC32C() {
	if s.crcCache == "" {
		return
	}
	tmp := s.crcCache + ".tmp"
	if err := os.WriteFile(tmp, []byte(s.crcCacheID), 0o600); err != nil {
		return
	}
	if err := os.Rename(tmp, s.crcCache); err != nil {
		os.Remove(tmp)
	}
}

// putMultipart uploads first, second and the rest of r as parts, at most
// s.concurrency at once. We do not use the SDK's feature/s3/manager uploader:
// it sends no Content-MD5 per part, so the store could not verify them.
func (s *Store) putMultipart(ctx context.Context, key string, r io.Reader, first, second part, ifNoneMatch *string) (err error) {
	mode, until := s.lockInput()
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:                    &s.bucket,
		Key:                       s.full(key),
		ServerSideEncryption:      s.sse,
		SSEKMSKeyId:               s.kmsKeyID,
		StorageClass:              s.class,
		ObjectLockMode:            mode,
		ObjectLockRetainUntilDate: until,
	})
	if err != nil {
		s.release(first)
		s.release(second)
		return fmt.Errorf("create multipart upload: %w", err)
	}
	uploadID := created.UploadId
	storage.UploadStarted(ctx, storage.Upload{Key: key, ID: aws.ToString(uploadID), Initiated: time.Now().UTC()})
	defer func() {
		if err == nil {
			return
		}
		if aerr := s.abort(ctx, key, uploadID); aerr != nil {
			err = fmt.Errorf("%w (abort multipart upload %s: %v)", err, aws.ToString(uploadID), aerr)
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.concurrency)
	var mu sync.Mutex
	var parts []types.CompletedPart
	upload := func(num int32, p part) {
		g.Go(func() error { // blocks while s.concurrency parts are uploading
			defer s.release(p)
			etag, err := s.uploadPart(gctx, key, uploadID, num, p.bytes())
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			parts = append(parts, types.CompletedPart{ETag: etag, PartNumber: aws.Int32(num)})
			return nil
		})
	}

	upload(1, first)
	cur := second
	var readErr error
	for num := int32(2); ; num++ {
		if cur.n == 0 { // r ended on a part boundary
			s.release(cur)
			break
		}
		if num > maxParts {
			s.release(cur)
			readErr = fmt.Errorf("object larger than %d parts of %d bytes", maxParts, s.partSize)
			break
		}
		more := cur.full
		upload(num, cur)
		if !more || gctx.Err() != nil { // the end, or a part failed, or ctx is done
			break
		}
		if cur, readErr = s.readPart(gctx, r); readErr != nil {
			break
		}
	}
	// A part's error comes first: it cancelled gctx, which also failed the read.
	if err := g.Wait(); err != nil {
		return err
	}
	if readErr != nil {
		return readErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             s.full(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     ifNoneMatch,
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

func (s *Store) uploadPart(ctx context.Context, key string, uploadID *string, num int32, data []byte) (*string, error) {
	out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:        &s.bucket,
		Key:           s.full(key),
		UploadId:      uploadID,
		PartNumber:    aws.Int32(num),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentMD5:    contentMD5(data),
	}, s.unsignedOverTLS()...)
	if err != nil {
		return nil, fmt.Errorf("upload part %d: %w", num, err)
	}
	return out.ETag, nil
}

// abort removes a failed multipart upload and its parts, even when ctx is
// done; it takes at most s.timeout more.
func (s *Store) abort(ctx context.Context, key string, uploadID *string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   &s.bucket,
		Key:      s.full(key),
		UploadId: uploadID,
	})
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsu) {
		return nil // gone already, or completed after all
	}
	return err
}

// Get opens the object for reading; the body is bound to ctx.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if !storage.ValidKey(key) {
		return nil, fmt.Errorf("get: invalid key %q", key)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: s.full(key)})
	var nsk *types.NoSuchKey // NoSuchBucket is an error, not an absence
	if errors.As(err, &nsk) {
		err = storage.ErrNotExist
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, permanent(err))
	}
	return out.Body, nil
}

// GetRange reads part of the object with a Range header; the body is bound
// to ctx.
func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if !storage.ValidKey(key) {
		return nil, fmt.Errorf("get: invalid key %q", key)
	}
	if err := storage.CheckRange(offset, length); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if length == 0 { // no Range header asks for nothing
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, fmt.Errorf("get: %w", err)
		}
		return io.NopCloser(strings.NewReader("")), nil
	}
	rng := fmt.Sprintf("bytes=%d-", offset)
	if length > 0 {
		rng += strconv.FormatInt(offset+length-1, 10)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: s.full(key), Range: &rng})
	var nsk *types.NoSuchKey
	var re interface{ HTTPStatusCode() int }
	switch {
	case errors.As(err, &nsk):
		err = storage.ErrNotExist
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable:
		// The object is there (else 404), and offset is at or past its end.
		return io.NopCloser(strings.NewReader("")), nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, permanent(err))
	}
	return out.Body, nil
}

// Stat reads the object's metadata with HeadObject.
func (s *Store) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if !storage.ValidKey(key) {
		return storage.ObjectInfo{}, fmt.Errorf("stat: invalid key %q", key)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: s.full(key)})
	if err != nil && isNotFound(err) {
		err = s.confirmAbsent(ctx, key)
	}
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, permanent(err))
	}
	return storage.ObjectInfo{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ModTime: aws.ToTime(out.LastModified).UTC(),
	}, nil
}

// isNotFound reports a 404 answer to HeadObject. A HEAD response has no
// body, so the SDK reports *types.NotFound whether the key or the whole
// bucket is missing; other stores may send an error code.
func isNotFound(err error) bool {
	var nf *types.NotFound
	var nsk *types.NoSuchKey
	if errors.As(err, &nf) || errors.As(err, &nsk) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return false
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// confirmAbsent tells a missing key from a missing (or misnamed) bucket
// after HeadObject answered 404: ErrNotExist must mean the store confirmed
// the absence, since wal-fetch then ends recovery. It lists the key itself
// (not HeadBucket), which needs no more than List does.
func (s *Store) confirmAbsent(ctx context.Context, key string) error {
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  &s.bucket,
		Prefix:  s.full(key),
		MaxKeys: aws.Int32(1),
	})
	if err != nil {
		return fmt.Errorf("not found, and the bucket did not answer: %w", err)
	}
	return storage.ErrNotExist
}

// List pages through ListObjectsV2. S3 returns keys in UTF-8 byte order,
// which is Go's string order.
func (s *Store) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if !possiblePrefix(prefix) {
		return nil // and MinIO would refuse the request
	}
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket}
	if full := s.prefix + prefix; full != "" {
		in.Prefix = aws.String(full)
	}
	pages := s3.NewListObjectsV2Paginator(s.client, in)
	last := ""
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, permanent(err))
		}
		for _, o := range page.Contents {
			key, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if !ok || !storage.ValidKey(key) {
				continue // e.g. a "dir/" marker made by a console: no Put writes it
			}
			if key <= last {
				return fmt.Errorf("list %s: store returned %q after %q, out of key order", prefix, key, last)
			}
			last = key
			if err := fn(storage.ObjectInfo{
				Key:     key,
				Size:    aws.ToInt64(o.Size),
				ModTime: aws.ToTime(o.LastModified).UTC(),
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Delete removes the object; S3 answers success for a missing key. On a
// versioned bucket it removes every version, and wraps storage.ErrLocked
// if the store keeps one for its Object Lock (see lock.go).
func (s *Store) Delete(ctx context.Context, key string) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("delete: invalid key %q", key)
	}
	if s.lockMode != "" {
		if err := s.deleteVersions(ctx, key); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		return nil
	}
	out, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: s.full(key)})
	var nsk *types.NoSuchKey // some S3-compatible stores say so
	if err != nil && !errors.As(err, &nsk) {
		return fmt.Errorf("delete %s: %w", key, permanent(err))
	}
	if err == nil && aws.ToBool(out.DeleteMarker) {
		// A versioned bucket hid the object behind a marker: remove it
		// for real, or show it again.
		if err := s.deleteVersions(ctx, key); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	return nil
}

// possiblePrefix reports whether some valid key could start with prefix.
func possiblePrefix(prefix string) bool {
	if len(prefix) > 1024 || strings.ContainsAny(prefix, "\\\x00") {
		return false
	}
	i := strings.LastIndexByte(prefix, '/')
	return i < 0 || storage.ValidKey(prefix[:i])
}

var _ storage.Uploads = (*Store)(nil)

// ListUploads pages through ListMultipartUploads.
func (s *Store) ListUploads(ctx context.Context, prefix string, fn func(storage.Upload) error) error {
	if !possiblePrefix(prefix) {
		return nil
	}
	in := &s3.ListMultipartUploadsInput{Bucket: &s.bucket}
	if full := s.prefix + prefix; full != "" {
		in.Prefix = aws.String(full)
	}
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return fmt.Errorf("list uploads %s: %w", prefix, permanent(err))
		}
		for _, u := range out.Uploads {
			key, ok := strings.CutPrefix(aws.ToString(u.Key), s.prefix)
			if !ok || !storage.ValidKey(key) {
				continue
			}
			if err := fn(storage.Upload{Key: key, ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated).UTC()}); err != nil {
				return err
			}
		}
		if !aws.ToBool(out.IsTruncated) || (aws.ToString(out.NextKeyMarker) == "" && aws.ToString(out.NextUploadIdMarker) == "") {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// AbortUpload aborts one multipart upload.
func (s *Store) AbortUpload(ctx context.Context, key, id string) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("abort upload: invalid key %q", key)
	}
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   &s.bucket,
		Key:      s.full(key),
		UploadId: aws.String(id),
	})
	var nsu *types.NoSuchUpload
	if err != nil && !errors.As(err, &nsu) {
		return fmt.Errorf("abort upload %s of %s: %w", id, key, permanent(err))
	}
	return nil
}

// permanentCodes are S3 error codes that no retry can fix: wrong
// credentials, no permission, no such bucket, a wrong region.
var permanentCodes = map[string]bool{
	"AccessDenied":                 true,
	"AccountProblem":               true,
	"AllAccessDisabled":            true,
	"AuthorizationHeaderMalformed": true,
	"InvalidAccessKeyId":           true,
	"InvalidBucketName":            true,
	"NoSuchBucket":                 true,
	"PermanentRedirect":            true,
	"SignatureDoesNotMatch":        true,
}

// permanent marks the store's answers that retrying cannot fix with
// storage.ErrPermanent: the codes above, and any 401 or 403 (a HEAD
// response carries no code). The SDK's retryer has already retried what it
// could, e.g. a skewed clock; timeouts, connection errors and 5xx stay
// transient.
func permanent(err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && permanentCodes[ae.ErrorCode()] {
		return storage.Permanent(err)
	}
	if errors.As(err, &ae) && missingLockConfig(ae) {
		return storage.Permanent(fmt.Errorf("%w (uploads are set to be locked, but the bucket was not created with Object Lock; see docs/STORAGE.md)", err))
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusMovedPermanently:
			return storage.Permanent(err)
		}
	}
	return err
}

// httpClient is the SDK's client with every wait bounded by timeout.
func httpClient(timeout time.Duration) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithReadTimeout(0). // the SDK's own counts reads only; stallConn counts both directions
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = timeout }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = timeout
			tr.ResponseHeaderTimeout = timeout
			// stallConn closes a pooled connection after timeout idle;
			// the pool drops it first, so a request never picks a dying one.
			tr.IdleConnTimeout = timeout / 2
			dial := tr.DialContext
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dial(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return newStallConn(c, timeout), nil
			}
		})
}
