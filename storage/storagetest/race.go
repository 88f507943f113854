package storagetest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/storage"
)

// The environment RaceCreate gives the processes it starts.
const (
	raceKeyEnv  = "PITR_STORAGETEST_RACE_KEY"
	raceSeedEnv = "PITR_STORAGETEST_RACE_SEED"
	raceSizeEnv = "PITR_STORAGETEST_RACE_SIZE"
)

// RaceCreate races n processes creating key in one store, each with
// bytes of its own: exactly one must win, every other must see
// storage.ErrExist, and st must then hold the winner's bytes. The
// processes are copies of the running test binary running only the test
// named helper, which must call RaceChild; env is added to their
// environment (how to reach the store). They are held at a barrier (their
// stdin) until all have started and opened the store.
func RaceCreate(t *testing.T, st storage.Storage, helper string, env []string, n int, key string, size int) {
	t.Helper()
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   bytes.Buffer
	}
	children := make([]*child, n)
	for i := range children {
		c := &child{cmd: exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+helper+"$", "-test.count=1", "-test.v")}
		c.cmd.Env = append(os.Environ(), env...)
		c.cmd.Env = append(c.cmd.Env, raceKeyEnv+"="+key, raceSeedEnv+"="+strconv.Itoa(1000+i), raceSizeEnv+"="+strconv.Itoa(size))
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
		var err error
		if c.stdin, err = c.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("start racer: %v", err)
		}
		children[i] = c
	}
	for _, c := range children {
		_ = c.stdin.Close() // go
	}
	winner, exist := -1, 0
	for i, c := range children {
		err := c.cmd.Wait()
		outcome := raceOutcome(c.out.String())
		switch {
		case err != nil || outcome == "":
			t.Errorf("racer %d: %v; output:\n%s", i, err, c.out.String())
		case outcome == "won":
			if winner >= 0 {
				t.Errorf("racers %d and %d both created %s", winner, i, key)
			}
			winner = i
		case outcome == "exists":
			exist++
		default:
			t.Errorf("racer %d: %s", i, outcome)
		}
	}
	if winner < 0 || exist != n-1 {
		t.Fatalf("%d racers saw ErrExist and winner is %d; want one winner and %d ErrExist", exist, winner, n-1)
	}
	if got := mustGet(t, st, key); !bytes.Equal(got, randomBytes(size, uint64(1000+winner))) {
		t.Errorf("%s holds %d bytes that are not the winner's", key, len(got))
	}
}

// raceOutcome finds the line RaceChild printed: "won", "exists" or an error.
func raceOutcome(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "race outcome: "); ok {
			return rest
		}
	}
	return ""
}

// RaceChild is the body of RaceCreate's helper test: in a process RaceCreate
// started it opens the store, waits at the barrier and creates the key;
// anywhere else it skips.
func RaceChild(t *testing.T, open func() (storage.Storage, error)) {
	key := os.Getenv(raceKeyEnv)
	if key == "" {
		t.Skip("only run by storagetest.RaceCreate")
	}
	seed, err1 := strconv.ParseUint(os.Getenv(raceSeedEnv), 10, 64)
	size, err2 := strconv.Atoi(os.Getenv(raceSizeEnv))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	st, err := open()
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(size, seed)
	_, _ = io.Copy(io.Discard, os.Stdin) // the barrier
	err = st.Create(t.Context(), key, bytes.NewReader(data))
	switch {
	case err == nil:
		fmt.Println("race outcome: won")
	case errors.Is(err, storage.ErrExist):
		fmt.Println("race outcome: exists")
	default:
		fmt.Printf("race outcome: error %v\n", err)
	}
}
