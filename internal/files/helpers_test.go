package files

import (
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/local"
)

func localStore(dir string) (storage.Storage, error) { return local.Open(dir) }
