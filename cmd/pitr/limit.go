package main

import (
	"sync"

	"golang.org/x/time/rate"

	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/limit"
)

// processLimits holds the process's one pair of bandwidth limiters
// (limit_upload, limit_download), made on first use: every store the
// process opens, the primary and the off-site repository, the daemon's
// jobs all, draws on the same two buckets.
type processLimits struct {
	once     sync.Once
	up, down *rate.Limiter
}

// wrap returns st limited by c's settings, or st itself when both are
// unlimited. The settings are read once, when the first store opens.
func (l *processLimits) wrap(c *config.Config, st storage.Storage) storage.Storage {
	l.once.Do(func() {
		l.up, l.down = limit.NewLimiter(int64(c.LimitUpload)), limit.NewLimiter(int64(c.LimitDownload))
	})
	if l.up == nil && l.down == nil {
		return st
	}
	return limit.New(st, l.up, l.down)
}
