package s3

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fakeS3 is just enough of S3 (path style, one bucket) to run the
// conformance suite without MinIO and to see what Put sends. Like S3, it
// refuses a PutObject or UploadPart whose Content-MD5 is missing or wrong.
type fakeS3 struct {
	bucket   string
	pageSize int // keys per ListObjectsV2 page

	mu       sync.Mutex
	objects  map[string]fakeObject
	uploads  map[string]map[int32][]byte // upload id -> part number -> bytes
	nextID   int
	inflight int // UploadPart requests being served
	// Recorded for tests.
	maxInflight int
	requests    []string // "METHOD op", e.g. "PUT UploadPart"
	noMD5       int      // PutObject and UploadPart requests without Content-MD5
	// failPart, if set, answers UploadPart of part n with that status
	// (0: serve it); attempt counts from 1 per part.
	failPart    func(n int32, attempt int) int
	partAttempt map[int32]int
	partDelay   time.Duration
}

type fakeObject struct {
	data    []byte
	modTime time.Time
}

func newFakeS3(bucket string) *fakeS3 {
	return &fakeS3{
		bucket:      bucket,
		pageSize:    1000,
		objects:     map[string]fakeObject{},
		uploads:     map[string]map[int32][]byte{},
		partAttempt: map[int32]int{},
	}
}

func (f *fakeS3) record(r *http.Request, op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+op)
}

func (f *fakeS3) ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code string) {
	if r.Method == http.MethodHead {
		w.WriteHeader(status) // HEAD answers carry no body
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<Error><Code>%s</Code><Message>%s</Message></Error>", code, code)
}

func writeXML(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/xml")
	b, _ := xml.Marshal(v)
	_, _ = w.Write(b)
}

// checkMD5 reads the body and checks it against Content-MD5.
func (f *fakeS3) checkMD5(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "IncompleteBody")
		return nil, false
	}
	want := r.Header.Get("Content-MD5")
	if want == "" {
		f.mu.Lock()
		f.noMD5++
		f.mu.Unlock()
		writeError(w, r, http.StatusBadRequest, "InvalidDigest")
		return nil, false
	}
	sum := md5.Sum(body)
	if base64.StdEncoding.EncodeToString(sum[:]) != want {
		writeError(w, r, http.StatusBadRequest, "BadDigest")
		return nil, false
	}
	return body, true
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != f.bucket {
		writeError(w, r, http.StatusNotFound, "NoSuchBucket")
		return
	}
	q := r.URL.Query()
	switch {
	case key == "" && r.Method == http.MethodGet && q.Get("list-type") == "2":
		f.record(r, "ListObjectsV2")
		f.list(w, q.Get("prefix"), q.Get("continuation-token"))
	case key == "":
		writeError(w, r, http.StatusNotImplemented, "NotImplemented")
	case r.Method == http.MethodPost && q.Has("uploads"):
		f.record(r, "CreateMultipartUpload")
		f.mu.Lock()
		f.nextID++
		id := strconv.Itoa(f.nextID)
		f.uploads[id] = map[int32][]byte{}
		f.mu.Unlock()
		writeXML(w, struct {
			XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
			Bucket   string
			Key      string
			UploadID string `xml:"UploadId"`
		}{Bucket: bucket, Key: key, UploadID: id})
	case r.Method == http.MethodPut && q.Has("uploadId"):
		f.record(r, "UploadPart")
		f.uploadPart(w, r, q.Get("uploadId"), q.Get("partNumber"))
	case r.Method == http.MethodPost && q.Has("uploadId"):
		f.record(r, "CompleteMultipartUpload")
		f.complete(w, r, key, q.Get("uploadId"))
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		f.record(r, "AbortMultipartUpload")
		f.mu.Lock()
		_, ok := f.uploads[q.Get("uploadId")]
		delete(f.uploads, q.Get("uploadId"))
		f.mu.Unlock()
		if !ok {
			writeError(w, r, http.StatusNotFound, "NoSuchUpload")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut:
		f.record(r, "PutObject")
		body, ok := f.checkMD5(w, r)
		if !ok {
			return
		}
		f.mu.Lock()
		if _, ok := f.objects[key]; ok && r.Header.Get("If-None-Match") == "*" {
			f.mu.Unlock()
			writeError(w, r, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		f.objects[key] = fakeObject{data: body, modTime: time.Now().UTC()}
		f.mu.Unlock()
		sum := md5.Sum(body)
		w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		f.record(r, map[string]string{http.MethodGet: "GetObject", http.MethodHead: "HeadObject"}[r.Method])
		f.mu.Lock()
		o, ok := f.objects[key]
		f.mu.Unlock()
		if !ok {
			writeError(w, r, http.StatusNotFound, "NoSuchKey")
			return
		}
		data := o.data
		if rng := r.Header.Get("Range"); rng != "" && r.Method == http.MethodGet {
			var ok bool
			if data, ok = fakeRange(data, rng); !ok {
				writeError(w, r, http.StatusRequestedRangeNotSatisfiable, "InvalidRange")
				return
			}
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %s/%d", strings.TrimPrefix(rng, "bytes="), len(o.data)))
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(data)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Header().Set("Last-Modified", o.modTime.Format(http.TimeFormat))
		if r.Method == http.MethodGet {
			_, _ = w.Write(data)
		}
	case r.Method == http.MethodDelete:
		f.record(r, "DeleteObject")
		f.mu.Lock()
		delete(f.objects, key)
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, r, http.StatusNotImplemented, "NotImplemented")
	}
}

func (f *fakeS3) uploadPart(w http.ResponseWriter, r *http.Request, id, num string) {
	n, err := strconv.ParseInt(num, 10, 32)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, "InvalidArgument")
		return
	}
	part := int32(n)
	f.mu.Lock()
	f.inflight++
	f.maxInflight = max(f.maxInflight, f.inflight)
	f.partAttempt[part]++
	attempt := f.partAttempt[part]
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}()
	time.Sleep(f.partDelay)
	if f.failPart != nil {
		if status := f.failPart(part, attempt); status != 0 {
			_, _ = io.Copy(io.Discard, r.Body)
			writeError(w, r, status, http.StatusText(status))
			return
		}
	}
	body, ok := f.checkMD5(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	parts, ok := f.uploads[id]
	if ok {
		parts[part] = body
	}
	f.mu.Unlock()
	if !ok {
		writeError(w, r, http.StatusNotFound, "NoSuchUpload")
		return
	}
	sum := md5.Sum(body)
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:])+`"`)
}

func (f *fakeS3) complete(w http.ResponseWriter, r *http.Request, key, id string) {
	var req struct {
		Parts []struct {
			PartNumber int32
			ETag       string
		} `xml:"Part"`
	}
	if err := xml.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, r, http.StatusBadRequest, "MalformedXML")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	parts, ok := f.uploads[id]
	if !ok {
		writeError(w, r, http.StatusNotFound, "NoSuchUpload")
		return
	}
	var data bytes.Buffer
	for i, p := range req.Parts {
		b, ok := parts[p.PartNumber]
		sum := md5.Sum(b)
		switch {
		case p.PartNumber != int32(i+1):
			writeError(w, r, http.StatusBadRequest, "InvalidPartOrder")
			return
		case !ok || p.ETag != `"`+hex.EncodeToString(sum[:])+`"`:
			writeError(w, r, http.StatusBadRequest, "InvalidPart")
			return
		case i < len(req.Parts)-1 && len(b) < MinPartSize:
			writeError(w, r, http.StatusBadRequest, "EntityTooSmall")
			return
		}
		data.Write(b)
	}
	if _, ok := f.objects[key]; ok && r.Header.Get("If-None-Match") == "*" {
		writeError(w, r, http.StatusPreconditionFailed, "PreconditionFailed")
		return
	}
	delete(f.uploads, id)
	f.objects[key] = fakeObject{data: data.Bytes(), modTime: time.Now().UTC()}
	writeXML(w, struct {
		XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
		Bucket  string
		Key     string
		ETag    string
	}{Bucket: f.bucket, Key: key, ETag: `"multipart"`})
}

// fakeRange cuts "bytes=FIRST-[LAST]" out of data like S3: false (416) when
// FIRST is at or past the end.
func fakeRange(data []byte, rng string) ([]byte, bool) {
	first, last, ok := strings.Cut(strings.TrimPrefix(rng, "bytes="), "-")
	from, err := strconv.Atoi(first)
	if !ok || err != nil || from >= len(data) {
		return nil, false
	}
	to := len(data) - 1
	if last != "" {
		n, err := strconv.Atoi(last)
		if err != nil || n < from {
			return nil, false
		}
		to = min(n, to)
	}
	return data[from : to+1], true
}

func (f *fakeS3) list(w http.ResponseWriter, prefix, after string) {
	type content struct {
		Key          string
		LastModified string
		Size         int
	}
	res := struct {
		XMLName               xml.Name `xml:"ListBucketResult"`
		Name                  string
		Prefix                string
		KeyCount              int
		IsTruncated           bool
		NextContinuationToken string `xml:",omitempty"`
		Contents              []content
	}{Name: f.bucket, Prefix: prefix}
	f.mu.Lock()
	var keys []string
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if len(res.Contents) == f.pageSize {
			res.IsTruncated = true
			res.NextContinuationToken = res.Contents[len(res.Contents)-1].Key
			break
		}
		o := f.objects[k]
		res.Contents = append(res.Contents, content{Key: k, LastModified: o.modTime.Format(time.RFC3339), Size: len(o.data)})
	}
	f.mu.Unlock()
	res.KeyCount = len(res.Contents)
	writeXML(w, res)
}

func (f *fakeS3) uploadCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.uploads)
}
