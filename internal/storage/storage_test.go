package storage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/databridge-io/databridge/internal/storage"
	"github.com/databridge-io/databridge/internal/testservers"
)

func TestSQLiteMigratesOnceAndInOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "databridge.db")
	db, err := storage.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	migrations := []string{
		`CREATE TABLE a (x INTEGER)`,
		`ALTER TABLE a ADD COLUMN y INTEGER`,
	}
	for i := 0; i < 2; i++ { // the second run must find nothing to do
		if err := storage.MigrateSQLite(ctx, db, "test", migrations); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	if _, err := db.Exec(`INSERT INTO a (x, y) VALUES (1, 2)`); err != nil {
		t.Fatalf("both migrations should have run: %v", err)
	}
	// Another component's migrations are counted apart.
	if err := storage.MigrateSQLite(ctx, db, "other", []string{`CREATE TABLE b (x INTEGER)`}); err != nil {
		t.Fatal(err)
	}
	// A binary that knows fewer migrations than the file has refuses it.
	err = storage.MigrateSQLite(ctx, db, "test", migrations[:1])
	if err == nil || !strings.Contains(err.Error(), "newer than this binary knows") {
		t.Fatalf("older binary: err = %v", err)
	}
	// A failing migration is not recorded and leaves nothing behind.
	bad := append(migrations, `CREATE TABLE c (x INTEGER); THIS IS NOT SQL`)
	if err := storage.MigrateSQLite(ctx, db, "test", bad); err == nil {
		t.Fatal("a bad migration succeeded")
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations WHERE component = 'test'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("recorded migrations = %d, %v; want 2", n, err)
	}
}

func TestClickHouseMigratesOnceAndInOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbName := fmt.Sprintf("storage_test_%d", time.Now().UnixNano())
	conn, err := storage.OpenClickHouse(ctx, storage.ClickHouseOptions{Addr: testservers.ClickHouseAddr(t), Database: dbName})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+dbName) })
	migrations := []string{
		`CREATE TABLE IF NOT EXISTS a (x UInt64) ENGINE = MergeTree ORDER BY x`,
		`ALTER TABLE a ADD COLUMN y UInt64`,
	}
	for i := 0; i < 2; i++ {
		if err := storage.MigrateClickHouse(ctx, conn, "test", migrations); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	// A second migrator that lost the race finds the column there.
	if err := conn.Exec(ctx, "DROP TABLE schema_migrations"); err != nil {
		t.Fatal(err)
	}
	if err := storage.MigrateClickHouse(ctx, conn, "test", migrations); err != nil {
		t.Fatalf("rerun after a lost race: %v", err)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO a (x, y)")
	if err != nil {
		t.Fatalf("both migrations should have run: %v", err)
	}
	if err := batch.Append(uint64(1), uint64(2)); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := conn.QueryRow(ctx, `SELECT count() FROM schema_migrations FINAL WHERE component = 'test'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("recorded migrations = %d, %v; want 2", n, err)
	}
	err = storage.MigrateClickHouse(ctx, conn, "test", migrations[:1])
	if err == nil || !strings.Contains(err.Error(), "newer than this binary knows") {
		t.Fatalf("older binary: err = %v", err)
	}
	if _, err := storage.OpenClickHouse(ctx, storage.ClickHouseOptions{Addr: "127.0.0.1:1", DialTimeout: time.Second}); err == nil ||
		!strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable address: err = %v", err)
	}
	if _, err := storage.OpenClickHouse(ctx, storage.ClickHouseOptions{Addr: "x:1", Database: "bad-name"}); err == nil {
		t.Fatal("a database name with a dash was accepted")
	}
}
