package image

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/errdefs"
)

// ApplyChanges applies Dockerfile instructions (docker import --change /
// docker commit --change) to cfg: CMD ENTRYPOINT ENV EXPOSE LABEL STOPSIGNAL
// USER VOLUME WORKDIR, in JSON or shell form.
func ApplyChanges(cfg *ocispec.ImageConfig, changes []string) error {
	for _, ch := range changes {
		ch = strings.TrimSpace(ch)
		if ch == "" {
			continue
		}
		instr, rest := ch, ""
		if i := strings.IndexAny(ch, " \t"); i >= 0 {
			instr, rest = ch[:i], ch[i+1:]
		}
		rest = strings.TrimSpace(rest)
		if err := applyChange(cfg, strings.ToUpper(instr), rest); err != nil {
			return errdefs.New(errdefs.InvalidParameter, "%v", err)
		}
	}
	return nil
}

func applyChange(cfg *ocispec.ImageConfig, instr, rest string) error {
	switch instr {
	case "CMD":
		cfg.Cmd = commandForm(rest)
	case "ENTRYPOINT":
		cfg.Entrypoint = commandForm(rest)
	case "ENV":
		kvs, err := keyValues("ENV", rest)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			cfg.Env = setEnv(cfg.Env, kv[0], kv[1])
		}
	case "LABEL":
		kvs, err := keyValues("LABEL", rest)
		if err != nil {
			return err
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			cfg.Labels[kv[0]] = kv[1]
		}
	case "EXPOSE":
		words, err := splitWords(rest)
		if err != nil {
			return err
		}
		if len(words) == 0 {
			return fmt.Errorf("EXPOSE requires at least one argument")
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range words {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[strings.ToLower(p)] = struct{}{}
		}
	case "VOLUME":
		vols := jsonArray(rest)
		if vols == nil {
			var err error
			if vols, err = splitWords(rest); err != nil {
				return err
			}
		}
		if len(vols) == 0 {
			return fmt.Errorf("VOLUME requires at least one argument")
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			cfg.Volumes[v] = struct{}{}
		}
	case "WORKDIR":
		w, err := oneWord("WORKDIR", rest)
		if err != nil {
			return err
		}
		if !path.IsAbs(w) {
			base := cfg.WorkingDir
			if base == "" {
				base = "/"
			}
			w = path.Join(base, w)
		}
		cfg.WorkingDir = path.Clean(w)
	case "USER":
		u, err := oneWord("USER", rest)
		if err != nil {
			return err
		}
		cfg.User = u
	case "STOPSIGNAL":
		s, err := oneWord("STOPSIGNAL", rest)
		if err != nil {
			return err
		}
		cfg.StopSignal = s
	default:
		return fmt.Errorf("%s is not a valid change command", instr)
	}
	return nil
}

// commandForm reads CMD/ENTRYPOINT: a JSON array, or shell form run by /bin/sh -c.
func commandForm(rest string) []string {
	if a := jsonArray(rest); a != nil {
		return a
	}
	if rest == "" {
		return nil
	}
	return []string{"/bin/sh", "-c", rest}
}

func jsonArray(s string) []string {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") {
		return nil
	}
	var a []string
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return nil
	}
	if a == nil {
		a = []string{}
	}
	return a
}

func oneWord(instr, rest string) (string, error) {
	words, err := splitWords(rest)
	if err != nil {
		return "", err
	}
	if len(words) != 1 {
		return "", fmt.Errorf("%s requires exactly one argument", instr)
	}
	return words[0], nil
}

// keyValues reads `k=v k2="v 2"` or the legacy `k v with spaces`.
func keyValues(instr, rest string) ([][2]string, error) {
	words, err := splitWords(rest)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%s requires at least one argument", instr)
	}
	if !strings.Contains(firstRaw(rest), "=") {
		// legacy form: the first word is the key, the rest of the line the value
		if len(words) < 2 {
			return nil, fmt.Errorf("%s must have two arguments", instr)
		}
		key := words[0]
		raw := strings.TrimSpace(rest[strings.Index(rest, firstRaw(rest))+len(firstRaw(rest)):])
		val, err := splitWords(raw)
		if err != nil {
			return nil, err
		}
		return [][2]string{{key, strings.Join(val, " ")}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s names can not be blank / syntax error in %q", instr, w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func firstRaw(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// splitWords splits on white space, honouring '…', "…" and backslash escapes.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' && i+1 < len(rs) {
				i++
				cur.WriteRune(rs[i])
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote = c
			inWord = true
		case c == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if name, _, _ := strings.Cut(e, "="); name == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}
