package testenv

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOUser is a MinIO user with its own policy, made through MinIO's admin
// API (as an operator would with `mc admin user add` and `mc admin policy`).
type MinIOUser struct {
	AccessKey, SecretKey, Region string
}

// Env returns the AWS SDK variables for the user's credentials, for child
// processes such as pitr run by archive_command.
func (u MinIOUser) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + u.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + u.SecretKey,
		"AWS_REGION=" + u.Region,
	}
}

// NoDeleteActions is what the database host's credential may do (see
// docs/STORAGE.md): read, list, write and abort its own uploads, set the
// retention of what it writes, but never delete or shorten a lock.
var NoDeleteActions = []string{
	"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:GetBucketLocation",
	"s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads",
	"s3:GetObjectRetention", "s3:PutObjectRetention",
}

// NoDeleteUser creates a user whose policy allows NoDeleteActions on bucket
// and denies s3:DeleteObject, s3:DeleteObjectVersion and
// s3:BypassGovernanceRetention: the database host's credential.
func (m *MinIOServer) NoDeleteUser(t testing.TB, bucket string) MinIOUser {
	t.Helper()
	return m.NewUser(t, NoDeletePolicy(bucket))
}

// NoDeletePolicy is the policy document of NoDeleteUser.
func NoDeletePolicy(bucket string) []byte {
	type statement struct {
		Effect   string   `json:"Effect"`
		Action   []string `json:"Action"`
		Resource []string `json:"Resource"`
	}
	res := []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"}
	doc := struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{"2012-10-17", []statement{
		{"Allow", NoDeleteActions, res},
		{"Deny", []string{"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"}, res},
	}}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err)
	}
	return b
}

// NewUser creates a user with random credentials and attaches a new
// policy, policy (an IAM policy document), to it.
func (m *MinIOServer) NewUser(t testing.TB, policy []byte) MinIOUser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := m.admin(t)
	u := MinIOUser{AccessKey: "user" + randomHex(8), SecretKey: randomHex(20), Region: m.Region}
	name := "policy-" + u.AccessKey
	if err := adm.AddCannedPolicy(ctx, name, policy); err != nil {
		t.Fatalf("add minio policy: %v", err)
	}
	if err := adm.AddUser(ctx, u.AccessKey, u.SecretKey); err != nil {
		t.Fatalf("add minio user: %v", err)
	}
	if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{name}, User: u.AccessKey}); err != nil {
		t.Fatalf("attach minio policy: %v", err)
	}
	return u
}

func (m *MinIOServer) admin(t testing.TB) *madmin.AdminClient {
	t.Helper()
	u, err := url.Parse(m.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	adm, err := madmin.NewWithOptions(u.Host, &madmin.Options{
		Creds:  credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""),
		Secure: strings.EqualFold(u.Scheme, "https"),
	})
	if err != nil {
		t.Fatalf("minio admin client: %v", err)
	}
	return adm
}

// NewLockedBucket is NewBucket with Object Lock enabled (and so
// versioning), without a default retention: objects are locked only by
// what their upload asks for.
func (m *MinIOServer) NewLockedBucket(t testing.TB) string {
	t.Helper()
	name := bucketName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := m.Client().CreateBucket(ctx, &s3.CreateBucketInput{
		Bucket:                     aws.String(name),
		ObjectLockEnabledForBucket: aws.Bool(true),
	}); err != nil {
		t.Fatalf("create locked bucket %s: %v", name, err)
	}
	return name
}
