package containers

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"berth/pkg/atomicfile"
	"berth/pkg/bus/dockermsg"
)

// RecordFile is the container record's file name in <root>/containers/<id>/.
const RecordFile = "container.json"

// keyFile keeps the idempotency key of the create, so that a create retried
// after a supervisor restart still finds its container.
const keyFile = "create.key"

// KeyTTL is how long a create's idempotency key is honoured.
const KeyTTL = 10 * time.Minute

var (
	idPattern   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)
)

// NewID returns a random 64-hex-character container ID whose 12-character
// short form is not all digits (Docker's rule, so it never reads as a number).
func NewID() string {
	for {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic(err)
		}
		id := hex.EncodeToString(b[:])
		if _, err := strconv.ParseUint(id[:12], 10, 64); err == nil {
			continue
		}
		return id
	}
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, then syncs the directory: a crash leaves either the
// old or the new content, never a torn file (package atomicfile).
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm)
}

func writeRecord(dir string, rec *dockermsg.Container) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(dir, RecordFile), data, 0o600)
}

func readRecord(dir string) (*dockermsg.Container, error) {
	data, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if err != nil {
		return nil, err
	}
	var rec dockermsg.Container
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// shimCredentials are the NATS credentials written in the shim.json of id.
func (m *Manager) shimCredentials(id string) (user, password string) {
	if m.cfg.ShimCredentials != nil {
		return m.cfg.ShimCredentials(id)
	}
	return m.cfg.NATSUser, m.cfg.NATSPass
}
