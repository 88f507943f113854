package config

import "testing"

// TestS3NoConditionalWrites: off by default, on from the environment.
func TestS3NoConditionalWrites(t *testing.T) {
	if c := Default(); c.S3NoConditionalWrites == nil || *c.S3NoConditionalWrites {
		t.Fatalf("default = %v, want false", c.S3NoConditionalWrites)
	}
	env := map[string]string{"PITR_S3_NO_CONDITIONAL_WRITES": "true"}
	c, err := Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if c.S3NoConditionalWrites == nil || !*c.S3NoConditionalWrites {
		t.Fatalf("PITR_S3_NO_CONDITIONAL_WRITES=true gave %v", c.S3NoConditionalWrites)
	}
}
