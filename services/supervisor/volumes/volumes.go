// Package volumes is the supervisor's volume store: named and anonymous
// volumes of the local driver, Docker's layout (<root>/volumes/<name>/_data)
// with one record per volume (volume.json beside _data, written
// atomically), the containers referencing each volume, and the mounts of
// volumes created with mount options (type, device, o).
package volumes

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"golang.org/x/sys/unix"

	"berth/pkg/atomicfile"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

// Docker's names.
const (
	DataDir        = "_data"
	RecordFile     = "volume.json"
	DefaultDriver  = "local"
	AnonymousLabel = "com.docker.volume.anonymous"
	// restrictedChars is Docker's pattern for local volume names: the name
	// is a directory under <root>/volumes, so it can hold no "/" nor begin
	// with a dot.
	restrictedChars = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
	// removing and creating prefix the directories of a volume on its way
	// out or in (no valid volume name begins with a dot).
	removing = ".rm-"
	creating = ".new-"
)

var validName = regexp.MustCompile("^" + restrictedChars + "+$")

// record is a volume's file.
type record struct {
	Name      string            `json:"name"`
	Driver    string            `json:"driver"`
	Labels    map[string]string `json:"labels"`
	Options   map[string]string `json:"options"`
	CreatedAt time.Time         `json:"createdAt"`
}

type vol struct {
	rec     record
	refs    map[string]bool // containers referencing the volume
	users   map[string]bool // containers running with it mounted (mount options only)
	mounted bool
}

// Store keeps the volumes of the node.
type Store struct {
	dir   string
	log   *slog.Logger
	event func(action, name string, attrs map[string]string)

	mu   sync.Mutex
	vols map[string]*vol
}

// Open loads the volumes under dir, creating it if needed. event publishes
// the volume events (create, destroy).
func Open(dir string, log *slog.Logger, event func(action, name string, attrs map[string]string)) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	if event == nil {
		event = func(string, string, map[string]string) {}
	}
	if err := os.MkdirAll(dir, 0o701); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, log: log, event: event, vols: map[string]*vol{}}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(dir, name)
		if strings.HasPrefix(name, removing) || strings.HasPrefix(name, creating) {
			// a removal or a creation cut short
			if err := os.RemoveAll(p); err != nil {
				log.Warn("removing a volume directory left behind", "dir", p, "err", err)
			}
			continue
		}
		if !e.IsDir() || !validName.MatchString(name) {
			continue
		}
		v := &vol{refs: map[string]bool{}, users: map[string]bool{}}
		data, err := os.ReadFile(filepath.Join(p, RecordFile))
		switch {
		case err == nil:
			if err := json.Unmarshal(data, &v.rec); err != nil || v.rec.Name != name {
				log.Error("unreadable volume record, skipped", "dir", p, "err", err)
				continue
			}
		case errors.Is(err, os.ErrNotExist):
			// a directory with data but no record (copied in by hand, say):
			// a volume of the local driver, like Docker's
			fi, serr := os.Stat(filepath.Join(p, DataDir))
			if serr != nil || !fi.IsDir() {
				continue
			}
			v.rec = record{Name: name, Driver: DefaultDriver, CreatedAt: fi.ModTime()}
		default:
			log.Error("unreadable volume record, skipped", "dir", p, "err", err)
			continue
		}
		v.mounted = needsMount(v.rec.Options) && isMountPoint(s.dataPath(name))
		s.vols[name] = v
	}
	return s, nil
}

func (s *Store) dataPath(name string) string { return filepath.Join(s.dir, name, DataDir) }

// Path is the directory of a volume's data.
func (s *Store) Path(name string) string { return s.dataPath(name) }

func noSuchVolume(name string) error {
	return errdefs.New(errdefs.NotFound, "get %s: no such volume", name)
}

func newName() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// validOpts are the local driver's options; "size" needs quotas, which
// berth does not set up.
var validOpts = map[string]bool{"type": true, "o": true, "device": true, "size": true}

func validate(name, driver string, opts map[string]string) error {
	if driver != "" && driver != DefaultDriver {
		return errdefs.New(errdefs.NotFound, "create %s: error looking up volume plugin %s: plugin %q not found", name, driver, driver)
	}
	if !validName.MatchString(name) {
		return errdefs.New(errdefs.InvalidParameter, "create %s: %q includes invalid characters for a local volume name, only %q are allowed. If you intended to pass a host directory, use absolute path", name, name, restrictedChars)
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !validOpts[k] {
			return errdefs.New(errdefs.InvalidParameter, "create %s: invalid option: %q", name, k)
		}
	}
	if _, ok := opts["size"]; ok {
		return errdefs.New(errdefs.InvalidParameter, "create %s: quota size requested but no quota support", name)
	}
	for _, req := range []struct{ opt, needs string }{{"device", "type"}, {"type", "device"}, {"o", "device"}, {"o", "type"}} {
		if _, ok := opts[req.opt]; ok {
			if _, ok := opts[req.needs]; !ok {
				return errdefs.New(errdefs.InvalidParameter, "create %s: missing required option: %q", name, req.needs)
			}
		}
	}
	return nil
}

// Create is `docker volume create`: an existing volume of that name is
// returned as it is; an empty name makes an anonymous volume.
func (s *Store) Create(req *dockermsg.VolumeCreateRequest) (volume.Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.createLocked(req.Name, req.Driver, req.DriverOpts, req.Labels)
	if err != nil {
		return volume.Volume{}, err
	}
	return s.viewLocked(v), nil
}

func (s *Store) createLocked(name, driver string, opts, labels map[string]string) (*vol, error) {
	if name == "" {
		name = newName()
		l := map[string]string{AnonymousLabel: ""}
		for k, v := range labels {
			l[k] = v
		}
		labels = l
	}
	if err := validate(name, driver, opts); err != nil {
		return nil, err
	}
	if v, ok := s.vols[name]; ok {
		return v, nil
	}
	v := &vol{
		rec:  record{Name: name, Driver: DefaultDriver, Labels: labels, Options: opts, CreatedAt: time.Now()},
		refs: map[string]bool{}, users: map[string]bool{},
	}
	// made aside and renamed into place: a crash leaves no half volume
	tmp := filepath.Join(s.dir, creating+name)
	_ = os.RemoveAll(tmp)
	data, _ := json.MarshalIndent(v.rec, "", "  ")
	err := os.Mkdir(tmp, 0o755)
	if err == nil {
		err = os.Mkdir(filepath.Join(tmp, DataDir), 0o755)
	}
	if err == nil {
		err = atomicfile.Write(filepath.Join(tmp, RecordFile), data, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, name))
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	s.vols[name] = v
	s.event("create", name, map[string]string{"driver": DefaultDriver})
	return v, nil
}

// Acquire is a container's use of a volume (its create): the volume is
// created if missing, with the mount's driver options and labels, and
// referenced by ref until Release. An empty name makes an anonymous volume;
// the volume's name is returned.
func (s *Store) Acquire(name, driver string, opts, labels map[string]string, ref string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.createLocked(name, driver, opts, labels)
	if err != nil {
		return "", err
	}
	v.refs[ref] = true
	return v.rec.Name, nil
}

// Release drops ref's reference to a volume.
func (s *Store) Release(name, ref string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.vols[name]; ok {
		delete(v.refs, ref)
	}
}

// Inspect is `docker volume inspect`.
func (s *Store) Inspect(name string) (volume.Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return volume.Volume{}, noSuchVolume(name)
	}
	return s.viewLocked(v), nil
}

func (s *Store) viewLocked(v *vol) volume.Volume {
	return volume.Volume{
		Name:       v.rec.Name,
		Driver:     v.rec.Driver,
		Labels:     v.rec.Labels,
		Options:    v.rec.Options,
		Mountpoint: s.dataPath(v.rec.Name),
		Scope:      "local",
		CreatedAt:  v.rec.CreatedAt.Local().Format(time.RFC3339),
	}
}

func toArgs(m map[string][]string) filters.Args {
	f := filters.NewArgs()
	for k, vs := range m {
		for _, v := range vs {
			f.Add(k, v)
		}
	}
	return f
}

// List is `docker volume ls`: filters dangling, driver, label and name.
func (s *Store) List(fm map[string][]string) ([]volume.Volume, error) {
	f := toArgs(fm)
	if err := f.Validate(map[string]bool{"dangling": true, "driver": true, "label": true, "name": true}); err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidParameter, err)
	}
	var dangling *bool
	for _, d := range f.Get("dangling") {
		var b bool
		switch strings.ToLower(d) {
		case "true", "1":
			b = true
		case "false", "0":
		default:
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid filter 'dangling=%s'", d)
		}
		dangling = &b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []volume.Volume{}
	for _, v := range s.vols {
		if dangling != nil && *dangling != (len(v.refs) == 0) {
			continue
		}
		if f.Contains("driver") && !f.ExactMatch("driver", v.rec.Driver) {
			continue
		}
		if !f.MatchKVList("label", v.rec.Labels) || (f.Contains("name") && !f.Match("name", v.rec.Name)) {
			continue
		}
		out = append(out, s.viewLocked(v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove is `docker volume rm`: a volume any container references cannot
// go; force only makes a missing volume no error.
func (s *Store) Remove(name string, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		if force {
			return nil
		}
		return noSuchVolume(name)
	}
	if len(v.refs) > 0 {
		refs := make([]string, 0, len(v.refs))
		for r := range v.refs {
			refs = append(refs, r)
		}
		sort.Strings(refs)
		return errdefs.New(errdefs.Conflict, "remove %s: volume is in use - [%s]", name, strings.Join(refs, ", "))
	}
	return s.removeLocked(v)
}

func (s *Store) removeLocked(v *vol) error {
	name := v.rec.Name
	if v.mounted {
		if err := unix.Unmount(s.dataPath(name), 0); err != nil && isMountPoint(s.dataPath(name)) {
			return errdefs.New(errdefs.Unknown, "remove %s: unmounting the volume: %v", name, err)
		}
		v.mounted = false
	}
	if isMountPoint(s.dataPath(name)) {
		// never delete through a mount someone else made
		return errdefs.New(errdefs.Unknown, "remove %s: %s is a mount point", name, s.dataPath(name))
	}
	// renamed out of the way first: a crash halfway leaves no volume whose
	// data is partly gone
	gone := filepath.Join(s.dir, removing+newName()[:16])
	if err := os.Rename(filepath.Join(s.dir, name), gone); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	delete(s.vols, name)
	if err := os.RemoveAll(gone); err != nil {
		s.log.Warn("removing a volume's data", "volume", name, "err", err)
	}
	s.event("destroy", name, map[string]string{"driver": v.rec.Driver})
	return nil
}

// RemoveAnonymous removes an anonymous volume of a removed container
// (`docker rm -v`, --rm) unless another container still uses it.
func (s *Store) RemoveAnonymous(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok || len(v.refs) > 0 {
		return nil
	}
	return s.removeLocked(v)
}

// Prune is `docker volume prune`: unused volumes matching label and label!,
// the anonymous ones only unless the filter all is true. Like Docker's, it
// leaves volumes with mount options alone (their data is not here).
func (s *Store) Prune(fm map[string][]string) (*dockermsg.VolumePruneResponse, error) {
	f := toArgs(fm)
	if err := f.Validate(map[string]bool{"label": true, "label!": true, "all": true}); err != nil {
		return nil, errdefs.Wrap(errdefs.InvalidParameter, err)
	}
	all := false
	for _, a := range f.Get("all") {
		switch strings.ToLower(a) {
		case "true", "1":
			all = true
		case "false", "0":
		default:
			return nil, errdefs.New(errdefs.InvalidParameter, "invalid filter 'all=%s': invalid value", a)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &dockermsg.VolumePruneResponse{Deleted: []string{}}
	names := make([]string, 0, len(s.vols))
	for n := range s.vols {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := s.vols[n]
		if len(v.refs) > 0 || len(v.rec.Options) > 0 {
			continue
		}
		if _, anon := v.rec.Labels[AnonymousLabel]; !all && !anon {
			continue
		}
		if !f.MatchKVList("label", v.rec.Labels) {
			continue
		}
		if f.Contains("label!") && matchAnyLabel(f.Get("label!"), v.rec.Labels) {
			continue
		}
		size := dirSize(s.dataPath(n))
		if err := s.removeLocked(v); err != nil {
			s.log.Warn("prune: removing volume", "volume", n, "err", err)
			continue
		}
		resp.Deleted = append(resp.Deleted, n)
		resp.SpaceReclaimed += uint64(size)
	}
	s.event("prune", "", map[string]string{"reclaimed": strconv.FormatUint(resp.SpaceReclaimed, 10)})
	return resp, nil
}

func matchAnyLabel(fs []string, labels map[string]string) bool {
	for _, l := range fs {
		k, v, hasV := strings.Cut(l, "=")
		if lv, ok := labels[k]; ok && (!hasV || lv == v) {
			return true
		}
	}
	return false
}

// dirSize is the bytes of the files under dir, each inode counted once.
func dirSize(dir string) int64 {
	var size int64
	seen := map[uint64]bool{}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		if st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		size += st.Size
		return nil
	})
	return size
}

// Count is the number of volumes (GET /info, metrics).
func (s *Store) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.vols)
}

func isMountPoint(p string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(p, &st) != nil || unix.Lstat(filepath.Dir(p), &parent) != nil {
		return false
	}
	if st.Dev != parent.Dev {
		return true
	}
	// a bind mount of the same file system: look it up
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMountPath(f[4]) == p {
			return true
		}
	}
	return false
}

func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
