package s3

// Object Lock (see docs/STORAGE.md).
//
// With Options.ObjectLockMode set, every new object (PutObject, and
// CreateMultipartUpload for one of several parts) carries that mode and a
// retain-until date Options.ObjectLockDays from now, so the store itself
// refuses to delete or overwrite it before then, whoever asks. S3 requires
// Content-MD5 (or a checksum) on such writes; we send Content-MD5 with
// every PutObject and UploadPart anyway. Store implements storage.Locker
// so that retention can extend the locks of what it keeps
// (retention.ExtendLocks); it never shortens one.
//
// A bucket with Object Lock is versioned, and on a versioned bucket a plain
// DeleteObject "succeeds" by adding a delete marker: the object is hidden,
// still stored and billed, and still locked. Delete never leaves that
// state: on a bucket known to be locked (ObjectLockMode set) it removes
// every version of the key by version id, which the store refuses while a
// version is locked (storage.ErrLocked); on any other bucket it sends a
// plain DeleteObject and, should the answer say it made a delete marker
// (a versioned bucket configured without the lock setting), removes the
// versions and the marker the same way. A version the store keeps because
// of its lock stays visible: the marker goes in every case. Get, Stat and
// List see only current versions, as before.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/pitr-dev/pitr/storage"
)

// ParseLockMode maps "governance" and "compliance" (any case) to S3's
// object lock modes; "" is no lock.
func ParseLockMode(s string) (types.ObjectLockMode, error) {
	switch strings.ToLower(s) {
	case "":
		return "", nil
	case "governance":
		return types.ObjectLockModeGovernance, nil
	case "compliance":
		return types.ObjectLockModeCompliance, nil
	}
	return "", fmt.Errorf("object lock mode %q: want governance or compliance", s)
}

// lockInput returns the mode and retain-until date of a new object, or
// nothing when the store does not lock.
func (s *Store) lockInput() (types.ObjectLockMode, *time.Time) {
	if s.lockMode == "" {
		return "", nil
	}
	return s.lockMode, aws.Time(s.now().UTC().Add(time.Duration(s.lockDays) * 24 * time.Hour).Truncate(time.Second))
}

var _ storage.Locker = (*Store)(nil)

// LockedUntil reads the current version's retention with
// GetObjectRetention; an object without one, or a bucket without Object
// Lock, gives the zero time.
func (s *Store) LockedUntil(ctx context.Context, key string) (time.Time, error) {
	if !storage.ValidKey(key) {
		return time.Time{}, fmt.Errorf("locked until: invalid key %q", key)
	}
	until, _, err := s.retention(ctx, key, nil)
	if err != nil {
		return time.Time{}, fmt.Errorf("locked until %s: %w", key, err)
	}
	return until, nil
}

// retention returns a version's retain-until date and mode (zero for none).
func (s *Store) retention(ctx context.Context, key string, versionID *string) (time.Time, types.ObjectLockRetentionMode, error) {
	out, err := s.client.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &s.bucket, Key: s.full(key), VersionId: versionID})
	if err != nil {
		if noRetention(err) {
			return time.Time{}, "", nil
		}
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) || isNotFound(err) {
			return time.Time{}, "", storage.ErrNotExist
		}
		return time.Time{}, "", permanent(err)
	}
	if out.Retention == nil || out.Retention.RetainUntilDate == nil {
		return time.Time{}, "", nil
	}
	return out.Retention.RetainUntilDate.UTC(), out.Retention.Mode, nil
}

// noRetention reports the answers meaning "this object has no retention":
// none set on it, or a bucket without Object Lock.
func noRetention(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError":
		return true
	case "InvalidRequest":
		return missingLockConfig(ae)
	}
	return false
}

// missingLockConfig reports the answer of a bucket without Object Lock to
// a request that needs it: "Bucket is missing ObjectLockConfiguration"
// (MinIO), "Bucket is missing Object Lock Configuration" (AWS).
func missingLockConfig(ae smithy.APIError) bool {
	msg := strings.ReplaceAll(strings.ToLower(ae.ErrorMessage()), " ", "")
	return ae.ErrorCode() == "InvalidRequest" && strings.Contains(msg, "objectlockconfiguration")
}

// ExtendLock sets key's retention to until with PutObjectRetention, unless
// it already reaches that far. The mode stays the object's own; an
// object without one gets the store's (Options.ObjectLockMode), and a
// store without one refuses.
func (s *Store) ExtendLock(ctx context.Context, key string, until time.Time) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("extend lock: invalid key %q", key)
	}
	cur, mode, err := s.retention(ctx, key, nil)
	if err != nil {
		return fmt.Errorf("extend lock of %s: %w", key, err)
	}
	until = until.UTC().Truncate(time.Second).Add(time.Second) // "at least until", whole seconds
	if !cur.Before(until) {
		return nil
	}
	if mode == "" {
		if s.lockMode == "" {
			return fmt.Errorf("extend lock of %s: no object lock mode configured", key)
		}
		mode = types.ObjectLockRetentionMode(s.lockMode)
	}
	_, err = s.client.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{
		Bucket:    &s.bucket,
		Key:       s.full(key),
		Retention: &types.ObjectLockRetention{Mode: mode, RetainUntilDate: aws.Time(until)},
	})
	if err != nil {
		return fmt.Errorf("extend lock of %s: %w", key, permanent(err))
	}
	return nil
}

// objectVersion is one version of a key, or a delete marker.
type objectVersion struct {
	id     *string
	marker bool
}

// versions lists every version and delete marker of exactly key.
func (s *Store) versions(ctx context.Context, key string) ([]objectVersion, error) {
	full := aws.ToString(s.full(key))
	in := &s3.ListObjectVersionsInput{Bucket: &s.bucket, Prefix: aws.String(full)}
	var out []objectVersion
	for {
		page, err := s.client.ListObjectVersions(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list versions: %w", permanent(err))
		}
		for _, v := range page.Versions {
			if aws.ToString(v.Key) == full {
				out = append(out, objectVersion{id: v.VersionId})
			}
		}
		for _, m := range page.DeleteMarkers {
			if aws.ToString(m.Key) == full {
				out = append(out, objectVersion{id: m.VersionId, marker: true})
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		in.KeyMarker, in.VersionIdMarker = page.NextKeyMarker, page.NextVersionIdMarker
	}
}

// deleteVersions removes every version of key by version id, then its
// delete markers, so that a version the store keeps stays visible. The
// first version refused for its lock gives an error wrapping
// storage.ErrLocked (and storage.ErrPermanent: retrying cannot help).
func (s *Store) deleteVersions(ctx context.Context, key string) error {
	vs, err := s.versions(ctx, key)
	if err != nil {
		return err
	}
	var first error
	for _, marker := range []bool{false, true} {
		for _, v := range vs {
			if v.marker != marker {
				continue
			}
			_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: s.full(key), VersionId: v.id})
			var nsk *types.NoSuchKey
			if err == nil || errors.As(err, &nsk) {
				continue
			}
			if !marker {
				err = s.lockedError(ctx, key, v.id, err)
			}
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// lockedError maps a refused delete of a version to storage.ErrLocked when
// the version is under a retention lock (the store's message says so, or
// its retention says so); anything else stays the store's error.
func (s *Store) lockedError(ctx context.Context, key string, versionID *string, err error) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) || (ae.ErrorCode() != "AccessDenied" && ae.ErrorCode() != "InvalidRequest") {
		return permanent(err)
	}
	if until, _, rerr := s.retention(ctx, key, versionID); rerr == nil && until.After(s.now()) {
		return storage.Permanent(fmt.Errorf("%w until %s: %v", storage.ErrLocked, until.Format(time.RFC3339), err))
	}
	msg := strings.ToLower(ae.ErrorMessage())
	if strings.Contains(msg, "worm") || strings.Contains(msg, "object lock") || strings.Contains(msg, "retention") {
		return storage.Permanent(fmt.Errorf("%w: %v", storage.ErrLocked, err))
	}
	return permanent(err)
}
