package bus

import "testing"

func TestNewPassword(t *testing.T) {
	a, b := NewPassword(), NewPassword()
	if len(a) != 64 || a == b || a == string(make([]byte, 64)) {
		t.Fatalf("%q %q", a, b)
	}
}
