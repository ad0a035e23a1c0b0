package ticks_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/storage"
	"github.com/databridge-io/databridge/internal/testservers"
	"github.com/databridge-io/databridge/internal/ticks"
	"github.com/databridge-io/databridge/internal/ticks/tickstest"
)

func TestSQLite(t *testing.T) {
	tickstest.Run(t, func(t *testing.T) ticks.Store {
		s, err := ticks.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "ticks.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestClickHouse(t *testing.T) {
	tickstest.Run(t, func(t *testing.T) ticks.Store { return openClickHouse(t) })
}

// testDatabase returns a ClickHouse database name no other test uses.
func testDatabase(t testing.TB) string {
	name := strings.NewReplacer("/", "_", " ", "_", "-", "_", ",", "_").Replace(t.Name())
	if len(name) > 28 { // database names end at 63 characters
		name = name[len(name)-28:]
	}
	return fmt.Sprintf("ticks_test_%s_%d", strings.Trim(name, "_"), time.Now().UnixNano())
}

// openClickHouse opens a store in a fresh database, dropped when the test ends.
func openClickHouse(t *testing.T) *ticks.ClickHouse {
	t.Helper()
	db := testDatabase(t)
	opts := storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(t), Database: db}
	s, err := ticks.OpenClickHouse(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		conn, err := storage.OpenClickHouse(context.Background(), opts)
		if err != nil {
			t.Errorf("drop database %s: %v", db, err)
			return
		}
		defer conn.Close()
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop database %s: %v", db, err)
		}
	})
	return s
}
