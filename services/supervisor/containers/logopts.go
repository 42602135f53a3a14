package containers

import (
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/docker/docker/api/types/container"
	units "github.com/docker/go-units"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

// logLimits are the json-file driver's max-size and max-file options.
func logLimits(hc *container.HostConfig) (int64, int, error) {
	var size int64
	files := 1
	if v := hc.LogConfig.Config["max-size"]; v != "" {
		n, err := units.RAMInBytes(v)
		if err != nil || n <= 0 {
			return 0, 0, errdefs.New(errdefs.InvalidParameter, "invalid log opt max-size %q", v)
		}
		size = n
	}
	if v := hc.LogConfig.Config["max-file"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, errdefs.New(errdefs.InvalidParameter, "invalid log opt max-file %q", v)
		}
		files = n
	}
	return size, files, nil
}

// logAttrs are the extra attributes the json-file driver gives each record
// of rec's log: the labels and env variables its log options name (or
// match), and the tag when one is asked for (a template of the
// container's and image's IDs and names), as Docker's ExtraAttributes.
func logAttrs(rec *dockermsg.Container) (map[string]string, error) {
	opts := rec.HostConfig.LogConfig.Config
	attrs := map[string]string{}
	var labels map[string]string
	var envList []string
	if rec.Config != nil {
		labels, envList = rec.Config.Labels, rec.Config.Env
	}
	env := map[string]string{}
	if opts["env"] != "" || opts["env-regex"] != "" { // most starts: no env option
		for _, e := range envList {
			if k, v, ok := strings.Cut(e, "="); ok {
				env[k] = v
			}
		}
	}
	pick := func(names string, from map[string]string) {
		if names == "" {
			return
		}
		for _, k := range strings.Split(names, ",") {
			if v, ok := from[k]; ok {
				attrs[k] = v
			}
		}
	}
	match := func(expr string, from map[string]string) error {
		if expr == "" {
			return nil
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return err
		}
		for k, v := range from {
			if re.MatchString(k) {
				attrs[k] = v
			}
		}
		return nil
	}
	pick(opts["labels"], labels)
	if err := match(opts["labels-regex"], labels); err != nil {
		return nil, err
	}
	pick(opts["env"], env)
	if err := match(opts["env-regex"], env); err != nil {
		return nil, err
	}
	if t := opts["tag"]; t != "" {
		tmpl, err := template.New("log-tag").Parse(t)
		if err != nil {
			return nil, err
		}
		image := ""
		if rec.Config != nil {
			image = rec.Config.Image
		}
		imageID := strings.TrimPrefix(rec.Image, "sha256:")
		var b strings.Builder
		if err := tmpl.Execute(&b, map[string]string{
			"ID": shortID(rec.ID), "FullID": rec.ID, "Name": strings.TrimPrefix(rec.Name, "/"),
			"ImageID": imageID[:min(12, len(imageID))], "ImageFullID": rec.Image, "ImageName": image, "DaemonName": "docker",
		}); err != nil {
			return nil, err
		}
		attrs["tag"] = b.String()
	}
	return attrs, nil
}
