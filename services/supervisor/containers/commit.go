package containers

import "path/filepath"

// UpperDir is the overlayfs upper directory of container id: its changes
// to the image (what docker commit makes a layer of).
func (m *Manager) UpperDir(id string) string { return filepath.Join(m.dir(id), "upper") }
