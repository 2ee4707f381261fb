package caracal

// This file reads the configuration's files and parses its value formats:
// profile discovery and loading, secret files, bootstrap tokens and resource
// bindings. configload.go combines the sources by precedence.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/caracal-go/caracal/internal/wire"
)

// Size caps for the files the loader reads: they are small text files, and a
// cap keeps a misconfigured path (a device, a log file) from being slurped.
const (
	maxProfileSize  = 1 << 20
	maxSecretSize   = 64 << 10
	maxBindingsSize = 4 << 20
)

// profilePath finds the profile: the named one (option, then CARACAL_CONFIG)
// or the first existing default location. namedBy is the option or variable
// that named the file, which must then exist; "" for a default location.
func (l *loader) profilePath() (path, namedBy string) {
	if l.o.configFile != "" {
		return l.o.configFile, "WithConfigFile"
	}
	if v := l.getenv("CARACAL_CONFIG"); v != "" {
		return v, "CARACAL_CONFIG"
	}
	for _, c := range profileCandidates(l.goos, l.getenv) {
		_, err := os.Stat(c)
		// A file where a directory of the path should be ($XDG_CONFIG_HOME/
		// caracal, say) means no profile there, as a missing one does. An
		// unreadable directory is reported through the normal load.
		if err == nil || !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return c, ""
		}
	}
	return "", ""
}

// profileCandidates lists the default profile locations in search order:
// $CARACAL_CONFIG_HOME/caracal.toml, $XDG_CONFIG_HOME/caracal/caracal.toml,
// then the OS user config directory (the one os.UserConfigDir would pick,
// computed from getenv so that tests control it).
func profileCandidates(goos string, getenv func(string) string) []string {
	var out []string
	if d := getenv("CARACAL_CONFIG_HOME"); d != "" {
		out = append(out, filepath.Join(d, "caracal.toml"))
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		out = append(out, filepath.Join(d, "caracal", "caracal.toml"))
	}
	switch goos {
	case "windows":
		if d := getenv("APPDATA"); d != "" {
			out = append(out, filepath.Join(d, "Caracal", "caracal.toml"))
		}
	case "darwin", "ios":
		if h := getenv("HOME"); h != "" {
			out = append(out, filepath.Join(h, "Library", "Application Support", "Caracal", "caracal.toml"))
		}
	case "plan9":
		if h := getenv("home"); h != "" {
			out = append(out, filepath.Join(h, "lib", "caracal", "caracal.toml"))
		}
	default:
		if h := getenv("HOME"); h != "" {
			out = append(out, filepath.Join(h, ".config", "caracal", "caracal.toml"))
		}
	}
	return slices.Compact(out)
}

// loadProfile finds, checks and decodes the profile, if any.
func (l *loader) loadProfile() {
	path, namedBy := l.profilePath()
	if path == "" {
		return
	}
	f, fi, err := openFile(path)
	if err != nil {
		switch {
		case errors.Is(err, errNotRegular):
			if namedBy != "" {
				l.failf("caracal: %s names %s, which is not a regular file (point %s at a caracal.toml file)", namedBy, path, namedBy)
			} else {
				l.failf("caracal: profile %s is not a regular file (replace it with a caracal.toml file, or remove it)", path)
			}
		case errors.Is(err, fs.ErrNotExist) && namedBy != "":
			l.fail(&wrapErr{fmt.Sprintf("caracal: %s names %s, which does not exist (create it, or point %s at an existing profile)", namedBy, path, namedBy), err})
		default:
			l.fail(&wrapErr{fmt.Sprintf("caracal: profile %s cannot be read: %v", path, errors.Unwrap(err)), err})
		}
		return
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxProfileSize+1))
	if err != nil {
		l.fail(&wrapErr{fmt.Sprintf("caracal: profile %s cannot be read: %v", path, err), err})
		return
	}
	if len(raw) > maxProfileSize {
		l.failf("caracal: profile %s is larger than %d bytes", path, maxProfileSize)
		return
	}
	p := &profile{path: path}
	keys, err := decodeProfile(string(raw), &p.data)
	if err != nil {
		l.fail(tomlError(path, err))
		return
	}
	if perm := fi.Mode().Perm(); l.goos != "windows" {
		if perm&0o022 != 0 {
			l.failf("caracal: %s is writable by group or others (mode %04o); run chmod go-w %s", path, perm, path)
		}
		if p.data.AppClientSecret != nil && perm&0o077 != 0 {
			l.failf("caracal: %s holds an inline app_client_secret but is readable by group or others (mode %04o); run chmod 600 %s, or move the secret to app_client_secret_file", path, perm, path)
		}
	}
	if p.data.AppClientSecret != nil && p.data.AppClientSecretFile != nil {
		l.failf("caracal: %s: app_client_secret and app_client_secret_file are both set (keep one)", path)
	}
	if len(keys) > 0 {
		hint := ""
		if slices.Contains(keys, "zone_url") {
			hint = " (zone_url is no longer read; use sts_url)"
		}
		if l.o.strict {
			l.failf("caracal: %s: unknown keys %s%s (remove them, or drop WithStrictConfig)", path, strings.Join(keys, ", "), hint)
		} else {
			l.warn("caracal: profile has unknown keys; they are ignored"+hint, "file", path, "keys", keys)
		}
	}
	l.profile = p
}

// tomlQuoted matches the quoted fragments of a TOML parser message; they can
// hold a piece of the file, such as a secret written without quotes, so they
// never reach an error message.
var tomlQuoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'[^']*'`)

// knownProfileKeys are the keys a TOML error may name.
var knownProfileKeys = []string{
	"zone_id", "application_id", "app_client_secret", "app_client_secret_file", "sts_url",
	"coordinator_url", "gateway_url", "default_ttl_seconds", "credentials", "optional_credentials",
	"resource", "upstream_prefix",
}

// tomlError turns a TOML error into one that names the file and line but
// echoes nothing of the file's content. It does not wrap err: the parser's
// error holds the whole file and prints the offending line, secret and all
// (ErrorWithPosition).
func tomlError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := tomlQuoted.ReplaceAllString(pe.Message, "…")
		key := ""
		if last := pe.LastKey; last != "" {
			parts := strings.Split(last, ".")
			if slices.Contains(knownProfileKeys, parts[len(parts)-1]) {
				key = fmt.Sprintf(" (key %s)", last)
			}
		}
		return fmt.Errorf("caracal: %s: line %d, column %d%s: invalid TOML: %s", path, pe.Position.Line, pe.Position.Col, key, msg)
	}
	if m := tomlTypeErr.FindStringSubmatch(err.Error()); m != nil {
		if key, uerr := strconv.Unquote(m[2]); uerr == nil {
			parts := strings.Split(key, ".")
			if want, ok := profileKeyTypes[parts[len(parts)-1]]; ok && slices.Contains(knownProfileKeys, parts[0]) {
				line := ""
				if m[1] != "" {
					line = "line " + m[1] + ": "
				}
				return fmt.Errorf("caracal: %s: %s%s must be %s (%s)", path, line, key, want, tomlQuoted.ReplaceAllString(m[3], "…"))
			}
		}
	}
	return fmt.Errorf("caracal: %s: invalid TOML: %s", path, tomlQuoted.ReplaceAllString(err.Error(), "…"))
}

// tomlTypeErr matches the decoder's message for a value that does not fit
// its key: the line, the quoted key path and the problem.
var tomlTypeErr = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key ("(?:[^"\\]|\\.)*")\): (.*)$`)

// profileKeyTypes says what each profile key holds, for type errors.
var profileKeyTypes = map[string]string{
	"zone_id": "a string", "application_id": "a string", "app_client_secret": "a string",
	"app_client_secret_file": "a string", "sts_url": "a string", "coordinator_url": "a string",
	"gateway_url": "a string", "default_ttl_seconds": "a whole number of seconds",
	"credentials":          "an array of tables ([[credentials]] with resource and upstream_prefix)",
	"optional_credentials": "an array of tables ([[optional_credentials]] with resource and upstream_prefix)",
	"resource":             "a string", "upstream_prefix": "a string",
}

// readSecretFile reads a secret file under the rules of PROTOCOL §2.5: it
// must exist, be owner-only except on Windows, and hold a non-empty secret
// after trimming. from names the source for the error.
func readSecretFile(from, path string) (string, error) {
	f, fi, err := openFile(path)
	if err != nil {
		if errors.Is(err, errNotRegular) {
			return "", fmt.Errorf("caracal: %s: secret file %s is not a regular file (point it at the file that holds the client secret)", from, path)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return "", &wrapErr{fmt.Sprintf("caracal: %s: secret file %s does not exist (create it with mode 0600, or fix the path)", from, path), err}
		}
		return "", &wrapErr{fmt.Sprintf("caracal: %s: secret file %s cannot be read: %v", from, path, errors.Unwrap(err)), err}
	}
	defer f.Close()
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return "", fmt.Errorf("caracal: %s: secret file %s is accessible by group or others (mode %04o); run chmod 600 %s", from, path, perm, path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return "", &wrapErr{fmt.Sprintf("caracal: %s: secret file %s cannot be read: %v", from, path, err), err}
	}
	if len(raw) > maxSecretSize {
		return "", fmt.Errorf("caracal: %s: secret file %s is larger than %d bytes; it should hold only the secret", from, path, maxSecretSize)
	}
	// A byte order mark (Windows editors and PowerShell write one) is not
	// part of the secret.
	secret := strings.TrimSpace(strings.TrimPrefix(string(raw), "\ufeff"))
	if secret == "" {
		return "", fmt.Errorf("caracal: %s: secret file %s is empty (write the client secret into it)", from, path)
	}
	return secret, nil
}

// checkBootstrapToken applies PROTOCOL §2.7: a JWT-shaped token must not use
// alg "none" and must not be expired. Opaque tokens, and JWT-shaped ones whose
// parts do not decode, are accepted: the Coordinator has the last word. Any
// token must be one a header can carry.
func checkBootstrapToken(from, token string, now time.Time) error {
	if !wire.BearerToken(token) {
		return fmt.Errorf("caracal: %s: the token has characters a bearer token cannot have (whitespace, a line break or other bytes outside RFC 6750's token form)", from)
	}
	// Maps, not structs: claim names are case-sensitive, and a struct field
	// would also take "ALG" or "EXP", in place of the "alg" or "exp" the
	// servers read.
	var header map[string]any
	if b, ok := wire.JWTPart(token, 0); ok && json.Unmarshal(b, &header) == nil {
		if alg, ok := header["alg"].(string); ok && strings.EqualFold(alg, "none") {
			return fmt.Errorf("caracal: %s: the token is unsigned (alg none) and is refused (use a signed lifecycle token from the STS)", from)
		}
	}
	var claims map[string]any
	if b, ok := wire.JWTPart(token, 1); ok {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if d.Decode(&claims) == nil {
			if n, ok := claims["exp"].(json.Number); ok {
				if exp, err := n.Float64(); err == nil && exp <= float64(now.Unix()) {
					at := "a time out of range"
					if exp > -1e12 && exp < 1e12 {
						at = time.Unix(int64(exp), 0).UTC().Format(time.RFC3339)
					}
					return fmt.Errorf("caracal: %s: the token expired at %s (mint a fresh lifecycle token, or configure a client secret)", from, at)
				}
			}
		}
	}
	return nil
}

// parseResources parses CARACAL_RESOURCES: comma-separated
// "resource=upstream_prefix" entries; empty entries are skipped; every bad
// entry is reported, numbered from 1 by its position in the list.
func parseResources(from, v string) ([]ResourceBinding, error) {
	var out []ResourceBinding
	var errs []error
	for i, entry := range strings.Split(v, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		eq := strings.IndexByte(entry, '=')
		if eq <= 0 {
			// The entry may be a bare upstream URL with a password in it.
			errs = append(errs, fmt.Errorf("caracal: %s: entry %d %s: want resource=upstream_prefix", from, i+1, showURL(entry)))
			continue
		}
		rid, prefix := strings.TrimSpace(entry[:eq]), strings.TrimSpace(entry[eq+1:])
		if err := checkBinding(rid, prefix); err != nil {
			errs = append(errs, fmt.Errorf("caracal: %s: entry %d %s: %v", from, i+1, showURL(rid), err))
			continue
		}
		out = append(out, ResourceBinding{rid, prefix})
	}
	return out, errors.Join(errs...)
}

// readBindingsFile reads CARACAL_RESOURCES_FILE: a JSON object
// {"<resource>": "<prefix>"} (taken in key order) or an array of objects with
// exactly the keys resource_id and upstream_prefix.
func readBindingsFile(path string) ([]ResourceBinding, error) {
	const from = "CARACAL_RESOURCES_FILE"
	f, _, err := openFile(path)
	if err != nil {
		if errors.Is(err, errNotRegular) {
			return nil, fmt.Errorf("caracal: %s: %s is not a regular file (point %s at a JSON file, or unset it)", from, path, from)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &wrapErr{fmt.Sprintf("caracal: %s: %s does not exist (create it, or unset %s)", from, path, from), err}
		}
		return nil, &wrapErr{fmt.Sprintf("caracal: %s: %s cannot be read: %v", from, path, errors.Unwrap(err)), err}
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxBindingsSize+1))
	if err != nil {
		return nil, &wrapErr{fmt.Sprintf("caracal: %s: %s cannot be read: %v", from, path, err), err}
	}
	if len(raw) > maxBindingsSize {
		return nil, fmt.Errorf("caracal: %s: %s is larger than %d bytes", from, path, maxBindingsSize)
	}
	return parseBindingsJSON(from+": "+path, raw)
}

// parseBindingsJSON parses the content of a bindings file; from names it.
func parseBindingsJSON(from string, raw []byte) ([]ResourceBinding, error) {
	raw = bytes.TrimSpace(raw)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("caracal: %s: "+format, append([]any{from}, args...)...)
	}
	switch {
	case len(raw) > 0 && raw[0] == '{':
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, bad("invalid JSON: %v", err)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []ResourceBinding
		var errs []error
		for _, k := range keys {
			prefix, ok := m[k].(string)
			if !ok {
				errs = append(errs, bad("entry %s: the upstream prefix is not a string", showURL(k)))
				continue
			}
			if err := checkBinding(k, prefix); err != nil {
				errs = append(errs, bad("entry %s: %v", showURL(k), err))
				continue
			}
			out = append(out, ResourceBinding{k, prefix})
		}
		return out, errors.Join(errs...)
	case len(raw) > 0 && raw[0] == '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, bad("invalid JSON: %v", err)
		}
		var out []ResourceBinding
		var errs []error
		for i, item := range list {
			var m map[string]any
			if err := json.Unmarshal(item, &m); err != nil || m == nil {
				errs = append(errs, bad("entry %d: want an object with resource_id and upstream_prefix", i+1))
				continue
			}
			var problems []string
			for k := range m {
				if k != "resource_id" && k != "upstream_prefix" {
					problems = append(problems, fmt.Sprintf("unknown key %q", k))
				}
			}
			sort.Strings(problems)
			rid, ridOK := m["resource_id"].(string)
			prefix, prefixOK := m["upstream_prefix"].(string)
			if !ridOK {
				problems = append(problems, "resource_id is missing or not a string")
			}
			if !prefixOK {
				problems = append(problems, "upstream_prefix is missing or not a string")
			}
			if ridOK && prefixOK {
				if err := checkBinding(rid, prefix); err != nil {
					problems = append(problems, err.Error())
				}
			}
			if len(problems) > 0 {
				errs = append(errs, bad("entry %d: %s", i+1, strings.Join(problems, "; ")))
				continue
			}
			out = append(out, ResourceBinding{rid, prefix})
		}
		return out, errors.Join(errs...)
	default:
		return nil, bad("want a JSON object {\"<resource>\": \"<upstream prefix>\"} or an array of {\"resource_id\", \"upstream_prefix\"} objects")
	}
}

// mergeBindings merges binding lists in order: a later binding for the same
// resource replaces the earlier one in place; the result is sorted by prefix
// length, longest first, ties kept in order.
func mergeBindings(lists ...[]ResourceBinding) []ResourceBinding {
	var out []ResourceBinding
	at := map[string]int{}
	for _, list := range lists {
		for _, b := range list {
			if i, ok := at[b.ResourceID]; ok {
				out[i] = b
				continue
			}
			at[b.ResourceID] = len(out)
			out = append(out, b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].UpstreamPrefix) > len(out[j].UpstreamPrefix) })
	return out
}

// dedupe drops repeated strings, keeping the first occurrence.
func dedupe(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(in))
	out := in[:0:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// wrapErr is an error with its own message that still matches the cause
// (fs.ErrNotExist, ...) under errors.Is.
type wrapErr struct {
	msg string
	err error
}

func (e *wrapErr) Error() string { return e.msg }
func (e *wrapErr) Unwrap() error { return e.err }

// errNotRegular marks a path that is not a regular file.
var errNotRegular = errors.New("not a regular file")

// openFile opens a configuration file only if it is a regular file. The
// type is checked before opening, since opening a named pipe for reading
// waits for a writer, and again on the open file, in case the path was
// replaced in between.
func openFile(path string) (*os.File, fs.FileInfo, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, nil, errNotRegular
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errNotRegular
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}
