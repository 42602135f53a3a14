package rootfs

import "testing"

func TestParseOptions(t *testing.T) {
	p := parseOptions([]string{"rbind", "ro", "nosuid", "rslave", "size=1m", "mode=755", "rw", "rro"})
	if p.flags&0x1 != 0 { // MS_RDONLY cleared by the later "rw"
		t.Errorf("rw did not clear ro: %#x", p.flags)
	}
	if p.data != "size=1m,mode=755" || len(p.prop) != 1 || !p.hasAttrs {
		t.Errorf("parsed %+v", p)
	}
}
