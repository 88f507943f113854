package dump

import (
	"slices"
	"strings"
	"testing"
)

// TestFilterGlobals: lines of existing roles and tablespaces are skipped,
// memberships kept, quoted names unquoted.
func TestFilterGlobals(t *testing.T) {
	in := `SET default_transaction_read_only = off;
CREATE ROLE alice;
ALTER ROLE alice WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:x';
CREATE ROLE postgres;
ALTER ROLE postgres WITH SUPERUSER INHERIT LOGIN;
CREATE ROLE "Odd ""One""";
ALTER ROLE "Odd ""One""" SET search_path TO app;
COMMENT ON ROLE postgres IS 'x';
GRANT alice TO postgres GRANTED BY postgres;
CREATE TABLESPACE fast OWNER alice LOCATION '/srv/fast';
CREATE TABLESPACE slow OWNER alice LOCATION '/srv/slow';
`
	out, res := filterGlobals(in, map[string]bool{"postgres": true}, map[string]bool{"slow": true})
	want := `SET default_transaction_read_only = off;
CREATE ROLE alice;
ALTER ROLE alice WITH NOSUPERUSER INHERIT LOGIN PASSWORD 'SCRAM-SHA-256$4096:x';
CREATE ROLE "Odd ""One""";
ALTER ROLE "Odd ""One""" SET search_path TO app;
GRANT alice TO postgres GRANTED BY postgres;
CREATE TABLESPACE fast OWNER alice LOCATION '/srv/fast';
`
	if out != want {
		t.Errorf("filtered:\n%s\nwant:\n%s", out, want)
	}
	if !slices.Equal(res.Created, []string{"alice", `Odd "One"`}) || !slices.Equal(res.Existing, []string{"postgres"}) ||
		!slices.Equal(res.Tablespaces, []string{"fast"}) || !slices.Equal(res.ExistingTablespaces, []string{"slow"}) {
		t.Errorf("result %+v", res)
	}
	if strings.Contains(out, "SUPERUSER INHERIT LOGIN;") {
		t.Error("an existing role's attributes would change")
	}
}
