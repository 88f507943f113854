package pgserver

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Names of configuration files in a data directory, see
// https://www.postgresql.org/docs/current/config-setting.html
const (
	Conf     = "postgresql.conf"
	AutoConf = "postgresql.auto.conf" // ALTER SYSTEM's
)

// Setting is one server parameter.
type Setting struct{ Name, Value string }

// CheckSettings refuses names the configuration file cannot hold, values
// with a line break or NUL, and a name given twice (names are case
// insensitive).
func CheckSettings(settings []Setting) error {
	seen := map[string]bool{}
	for _, s := range settings {
		if !ValidName(s.Name) {
			return fmt.Errorf("setting %q: not a parameter name", s.Name)
		}
		if strings.ContainsAny(s.Value, "\x00\n\r") {
			return fmt.Errorf("setting %s: value contains a line break or NUL", s.Name)
		}
		name := strings.ToLower(s.Name)
		if seen[name] {
			return fmt.Errorf("setting %s given twice", s.Name)
		}
		seen[name] = true
	}
	return nil
}

// ValidName reports whether name is a parameter name the configuration
// file accepts: an identifier or "ext.name" (guc-file.l's ID and
// QUALIFIED_ID: letters, digits, underscores and bytes 0x80-0xff, not
// starting with a digit; no "$", unlike SET's custom names).
func ValidName(name string) bool {
	n := matchQualifiedID(name)
	if n == 0 {
		n = matchID(name)
	}
	return n > 0 && n == len(name)
}

// Quote quotes a configuration value: the parser undoes backslash escapes
// and doubled single quotes inside '...'.
func Quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(v) + "'"
}

// Line is one parsed line of a configuration file.
type Line struct {
	Name    string // lower-cased; "" for blank and comment lines
	Value   string // unquoted, escapes undone
	Include bool   // include, include_if_exists or include_dir: Value is a path, nothing is set
}

// ParseLine parses one line (with or without its "\n") as the server does
// (guc-file.l): blank, a comment, or "name = value" or "name value" with an
// optional trailing comment, where value is a quoted string ('...' with ”
// and backslash escapes), a number with an optional unit, or an unquoted
// word. Anything else is a syntax error, which the server refuses to start
// with.
func ParseLine(line string) (Line, error) {
	s := strings.TrimSuffix(line, "\n")
	if strings.ContainsRune(s, '\n') {
		return Line{}, errors.New("more than one line")
	}
	toks, err := lexLine(s)
	if err != nil {
		return Line{}, err
	}
	if len(toks) == 0 {
		return Line{}, nil
	}
	if toks[0].kind != tokID && toks[0].kind != tokQualifiedID {
		return Line{}, fmt.Errorf("syntax error at %q: not a parameter name", toks[0].text)
	}
	rest := toks[1:]
	if len(rest) > 0 && rest[0].kind == tokEquals {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return Line{}, fmt.Errorf("syntax error: %s has no value", toks[0].text)
	}
	switch rest[0].kind {
	case tokID, tokString, tokInteger, tokReal, tokUnquoted:
	default:
		return Line{}, fmt.Errorf("syntax error at %q: not a value", rest[0].text)
	}
	if len(rest) > 1 {
		return Line{}, fmt.Errorf("syntax error at %q: more than one value", rest[1].text)
	}
	l := Line{Name: strings.ToLower(toks[0].text), Value: rest[0].text}
	if rest[0].kind == tokString {
		l.Value = unquote(l.Value)
	}
	switch l.Name {
	case "include", "include_if_exists", "include_dir":
		l.Include = true
	}
	return l, nil
}

// LineName returns the parameter a line sets, lower-cased, or "" for
// blank lines, comments, include directives and lines with syntax errors.
func LineName(line string) string {
	l, err := ParseLine(line)
	if err != nil || l.Include {
		return ""
	}
	return l.Name
}

type tokKind int

// In guc-file.l's order: of two matches of one length, the first wins.
const (
	tokID tokKind = iota
	tokQualifiedID
	tokString
	tokUnquoted
	tokInteger
	tokReal
	tokEquals
)

type token struct {
	kind tokKind
	text string
}

// lexLine splits a line into guc-file.l's tokens, longest match first,
// skipping blanks ([ \t\r]) and a comment ("#" to the end of the line).
func lexLine(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		switch s[i] {
		case ' ', '\t', '\r':
			i++
			continue
		case '#':
			return toks, nil
		}
		best, kind := 0, tokKind(0)
		for k, match := range []func(string) int{matchID, matchQualifiedID, matchString, matchUnquoted, matchInteger, matchReal, matchEquals} {
			if n := match(s[i:]); n > best {
				best, kind = n, tokKind(k)
			}
		}
		if best == 0 {
			return nil, fmt.Errorf("syntax error at %q", s[i:])
		}
		toks = append(toks, token{kind, s[i : i+best]})
		i += best
	}
	return toks, nil
}

func isLetter(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHexDigit(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func isUnitLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// countWhile returns how many leading bytes of s satisfy ok.
func countWhile(s string, ok func(byte) bool) int {
	n := 0
	for n < len(s) && ok(s[n]) {
		n++
	}
	return n
}

// matchID: {LETTER}{LETTER_OR_DIGIT}*
func matchID(s string) int {
	if s == "" || !isLetter(s[0]) {
		return 0
	}
	return 1 + countWhile(s[1:], func(c byte) bool { return isLetter(c) || isDigit(c) })
}

// matchQualifiedID: {ID}"."{ID}
func matchQualifiedID(s string) int {
	n := matchID(s)
	if n == 0 || n >= len(s) || s[n] != '.' {
		return 0
	}
	m := matchID(s[n+1:])
	if m == 0 {
		return 0
	}
	return n + 1 + m
}

// matchUnquoted: {LETTER}({LETTER_OR_DIGIT}|[-._:/])*
func matchUnquoted(s string) int {
	if s == "" || !isLetter(s[0]) {
		return 0
	}
	return 1 + countWhile(s[1:], func(c byte) bool { return isLetter(c) || isDigit(c) || strings.IndexByte("-._:/", c) >= 0 })
}

// matchString: \'([^'\\\n]|\\.|\'\')*\' , the longest such prefix.
func matchString(s string) int {
	if s == "" || s[0] != '\'' {
		return 0
	}
	longest := 0
	for i := 1; i < len(s); {
		switch s[i] {
		case '\'':
			longest = i + 1 // a closing quote, unless '' goes on
			if i+1 < len(s) && s[i+1] == '\'' {
				i += 2
				continue
			}
			return longest
		case '\\':
			if i+1 >= len(s) || s[i+1] == '\n' {
				return longest
			}
			i += 2
		case '\n':
			return longest
		default:
			i++
		}
	}
	return longest
}

func sign(s string) int {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		return 1
	}
	return 0
}

// matchInteger: {SIGN}?({DIGIT}+|0x{HEXDIGIT}+){UNIT_LETTER}*
func matchInteger(s string) int {
	i := sign(s)
	n := 0
	if d := countWhile(s[i:], isDigit); d > 0 {
		n = i + d
	}
	if strings.HasPrefix(s[i:], "0x") {
		if h := countWhile(s[i+2:], isHexDigit); h > 0 {
			n = max(n, i+2+h)
		}
	}
	if n == 0 {
		return 0
	}
	// Units follow either form; the longer whole match wins.
	best := n + countWhile(s[n:], isUnitLetter)
	if d := countWhile(s[i:], isDigit); d > 0 {
		best = max(best, i+d+countWhile(s[i+d:], isUnitLetter))
	}
	return best
}

// matchReal: {SIGN}?{DIGIT}*"."{DIGIT}*([Ee]{SIGN}?{DIGIT}+)?
func matchReal(s string) int {
	i := sign(s)
	i += countWhile(s[i:], isDigit)
	if i >= len(s) || s[i] != '.' {
		return 0
	}
	i++
	i += countWhile(s[i:], isDigit)
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		j += sign(s[j:])
		if d := countWhile(s[j:], isDigit); d > 0 {
			i = j + d
		}
	}
	return i
}

func matchEquals(s string) int {
	if strings.HasPrefix(s, "=") {
		return 1
	}
	return 0
}

// unquote undoes a quoted value as guc-file.l's DeescapeQuotedString:
// ” is ', backslash escapes \b \f \n \r \t and octal \ooo, any other
// backslashed byte stands for itself.
func unquote(q string) string {
	s := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v := int(e - '0')
				for k := 0; k < 2 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '7'; k++ {
					i++
					v = v*8 + int(s[i]-'0')
				}
				b.WriteByte(byte(v))
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Edit is a change to a configuration file: comment out the lines that
// set one of Settings or a name Disable accepts, then append Settings
// under Header.
type Edit struct {
	Settings []Setting
	// Disable, if set, also comments out the lines setting a name it
	// accepts (given lower-cased).
	Disable func(name string) bool
	// DisabledPrefix starts the commented-out lines, e.g.
	// "# disabled by pitr restore: ".
	DisabledPrefix string
	// Header is the comment line above the appended settings, without
	// its "\n".
	Header string
}

// Apply returns old edited. A new postgresql.auto.conf (old empty) starts
// with ALTER SYSTEM's header when auto is true.
func (e Edit) Apply(old []byte, auto bool) []byte {
	ours := map[string]bool{}
	for _, s := range e.Settings {
		ours[strings.ToLower(s.Name)] = true
	}
	var b bytes.Buffer
	if len(old) == 0 && auto {
		b.WriteString("# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n")
	}
	for line := range strings.Lines(string(old)) {
		if name := LineName(line); name != "" && (ours[name] || e.Disable != nil && e.Disable(name)) {
			b.WriteString(e.DisabledPrefix)
		}
		b.WriteString(line)
	}
	if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	b.WriteString(e.Header + "\n")
	for _, s := range e.Settings {
		fmt.Fprintf(&b, "%s = %s\n", s.Name, Quote(s.Value))
	}
	return b.Bytes()
}

// EditFile applies e to dataDir/name (Conf or AutoConf, which may be
// missing): checked with CheckSettings, replaced atomically, keeping its
// mode and owner; a new file gets mode 0600 and, when we are root, the
// data directory's owner. A symbolic link or other non-regular file is
// refused.
func EditFile(dataDir, name string, e Edit) error {
	if err := CheckSettings(e.Settings); err != nil {
		return err
	}
	dirInfo, err := os.Stat(dataDir)
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, name)
	var old []byte
	mode := fs.FileMode(0o600) // PostgreSQL's pg_file_create_mode
	info, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		info = dirInfo
	case err != nil:
		return err
	case !info.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	default:
		if old, err = os.ReadFile(path); err != nil {
			return err
		}
		if info.Mode().Perm() != 0 {
			mode = info.Mode().Perm()
		}
	}
	return WriteFile(path, e.Apply(old, name == AutoConf), mode, info)
}

// WriteFile replaces path with data through a temporary file in the same
// directory, fsynced, renamed over it and the directory fsynced. When we
// are root, the new file gets the uid and gid of like (e.g. the data
// directory), since the server must be able to read it.
func WriteFile(path string, data []byte, mode fs.FileMode, like fs.FileInfo) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".pitr-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if st, ok := like.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
