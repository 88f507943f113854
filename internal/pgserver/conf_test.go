package pgserver

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    Line
		wantErr bool
	}{
		{"work_mem = '4MB'\n", Line{Name: "work_mem", Value: "4MB"}, false},
		{"  Work_Mem='4MB'", Line{Name: "work_mem", Value: "4MB"}, false},
		{"work_mem 4MB", Line{Name: "work_mem", Value: "4MB"}, false},
		{"\twork_mem\t=\t4MB # c", Line{Name: "work_mem", Value: "4MB"}, false},
		{"work_mem = 4MB\r\n", Line{Name: "work_mem", Value: "4MB"}, false},
		{"pitr.x = 1", Line{Name: "pitr.x", Value: "1"}, false},
		{"shared_buffers = -1", Line{Name: "shared_buffers", Value: "-1"}, false},
		{"x = 0x1F", Line{Name: "x", Value: "0x1F"}, false},
		{"x = 1.5e3", Line{Name: "x", Value: "1.5e3"}, false},
		{"x = .5", Line{Name: "x", Value: ".5"}, false},
		{"x = on", Line{Name: "x", Value: "on"}, false},
		{"x = en_US.UTF-8", Line{Name: "x", Value: "en_US.UTF-8"}, false},
		{"x = ''", Line{Name: "x", Value: ""}, false},
		{`x = 'it''s'`, Line{Name: "x", Value: "it's"}, false},
		{`x = 'a\'b'`, Line{Name: "x", Value: "a'b"}, false},
		{`x = 'C:\\dir\tx\101'`, Line{Name: "x", Value: "C:\\dir\tx" + "A"}, false},
		{`x = 'a # b' # c`, Line{Name: "x", Value: "a # b"}, false},
		{"include 'x.conf'", Line{Name: "include", Value: "x.conf", Include: true}, false},
		{"include_dir 'conf.d'", Line{Name: "include_dir", Value: "conf.d", Include: true}, false},
		{"Include_If_Exists = 'x'", Line{Name: "include_if_exists", Value: "x", Include: true}, false},
		{"# work_mem = 4MB", Line{}, false},
		{"", Line{}, false},
		{"\n", Line{}, false},
		{"  \t\r\n", Line{}, false},
		{"work_mem", Line{}, true},
		{"work_mem # nothing", Line{}, true},
		{"work_mem =", Line{}, true},
		{"= 4MB", Line{}, true},
		{"work_mem = 4MB 5MB", Line{}, true},
		{"work_mem = = 4MB", Line{}, true},
		{"x = /usr/bin/true", Line{}, true}, // unquoted values start with a letter
		{"x = 'open", Line{}, true},
		{"x = 'a'b'", Line{}, true},
		{"a$b = 1", Line{}, true},        // SET takes $, the file does not
		{"a.b.c = 1", Line{}, true},      // one dot at most
		{"\fwork_mem = 1", Line{}, true}, // blanks are space, tab and CR only
		{"1abc = 1", Line{}, true},
		{"x = 1\ny = 2", Line{}, true},
	} {
		got, err := ParseLine(tc.line)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseLine(%q) = %+v, %v; want %+v, error %v", tc.line, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestLineName(t *testing.T) {
	for line, want := range map[string]string{
		"Work_Mem = 1":     "work_mem",
		"include 'x.conf'": "",
		"work_mem":         "",
		"# x = 1":          "",
	} {
		if got := LineName(line); got != want {
			t.Errorf("LineName(%q) = %q, want %q", line, got, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"work_mem": true, "pitr.x": true, "_a1": true, "\xc3\xa9t\xc3\xa9": true,
		"": false, "1a": false, "a$": false, "a.b.c": false, "a.": false, ".a": false, "a b": false, "a-b": false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, v := range []string{"", "on", "/usr/bin/pitr wal-push %p", "it's", `C:\dir`, `'\'`, "a # b"} {
		l, err := ParseLine("x = " + Quote(v))
		if err != nil || l.Value != v {
			t.Errorf("ParseLine(x = %s) = %q, %v; want %q", Quote(v), l.Value, err, v)
		}
	}
	if got := Quote(`it's C:\`); got != `'it''s C:\\'` {
		t.Errorf("Quote = %s", got)
	}
}

func TestCheckSettings(t *testing.T) {
	if err := CheckSettings([]Setting{{"archive_mode", "on"}, {"pitr.x", "1"}}); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]Setting{
		{{"a = 1\nb", "x"}},
		{{"", "x"}},
		{{"a$b", "x"}},
		{{"archive_command", "x\ny"}},
		{{"archive_command", "x\x00"}},
		{{"work_mem", "1"}, {"Work_Mem", "2"}},
	} {
		if err := CheckSettings(bad); err == nil {
			t.Errorf("CheckSettings(%q) accepted", bad)
		}
	}
}

func TestEditFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, Conf)
	if err := os.WriteFile(path, []byte("port = 5432\nwork_mem = 4MB # old\n#work_mem = 1MB\ninclude 'work_mem.conf'\nmax_wal_size = 1GB"), 0o640); err != nil {
		t.Fatal(err)
	}
	err := EditFile(dir, Conf, Edit{
		Settings:       []Setting{{"Work_Mem", "8MB"}},
		Disable:        func(name string) bool { return name == "port" },
		DisabledPrefix: "# off: ",
		Header:         "# added",
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# off: port = 5432\n# off: work_mem = 4MB # old\n#work_mem = 1MB\ninclude 'work_mem.conf'\nmax_wal_size = 1GB\n# added\nWork_Mem = '8MB'\n"
	if string(b) != want {
		t.Errorf("edited:\n%s\nwant:\n%s", b, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, %v; want 0640", fi.Mode().Perm(), err)
	}
}

func TestReadPIDFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadPIDFile(dir); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("4242\n/data\n1700000000\n5432\n/tmp\n127.0.0.1\n  1234   5678\nready   \n")
	if f, err := ReadPIDFile(dir); err != nil || f != (PIDFile{PID: 4242, Status: "ready"}) {
		t.Errorf("ReadPIDFile = %+v, %v", f, err)
	}
	write("4242\n/data\n")
	if f, err := ReadPIDFile(dir); err != nil || f != (PIDFile{PID: 4242}) {
		t.Errorf("ReadPIDFile = %+v, %v", f, err)
	}
	for _, bad := range []string{"", "x\n", "-1\n", "0\n"} {
		write(bad)
		if _, err := ReadPIDFile(dir); err == nil {
			t.Errorf("ReadPIDFile(%q) accepted", bad)
		}
	}
	write("1073741824\n")
	if _, ok := LivePostmaster(dir); ok {
		t.Error("stale postmaster.pid is live")
	}
}
