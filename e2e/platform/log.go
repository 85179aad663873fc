package platform

import (
	"io"
	"log"
)

// discardLogger silences the in-process registries' request log.
func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
