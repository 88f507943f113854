package copy

import (
	"time"

	"github.com/pitr-dev/pitr/storage/retry"
)

func retryPolicy() retry.Policy {
	return retry.Policy{Timeout: 10 * time.Second, Initial: time.Millisecond, Max: 10 * time.Millisecond}
}
