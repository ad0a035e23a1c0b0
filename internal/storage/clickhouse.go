package storage

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouseOptions says where a store's ClickHouse tables live.
type ClickHouseOptions struct {
	// Addr is host:port of the server's native protocol port (9000).
	Addr string
	// Database holds the tables; it is created if missing. Empty means
	// "databridge".
	Database string
	// Username and Password authenticate; empty Username means "default".
	Username, Password string
	// DialTimeout bounds connecting. Zero means 5s.
	DialTimeout time.Duration
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// OpenClickHouse connects to the server over the native protocol, creates
// the database if it is missing and returns a connection pool bound to it.
// It works with Debian's ClickHouse 18.16: settings are ints only, and
// every INSERT the stores write names its columns.
func OpenClickHouse(ctx context.Context, o ClickHouseOptions) (clickhouse.Conn, error) {
	if o.Addr == "" {
		return nil, fmt.Errorf("storage: a ClickHouse address (host:9000) is required")
	}
	if o.Database == "" {
		o.Database = "databridge"
	}
	if !identifier.MatchString(o.Database) {
		return nil, fmt.Errorf("storage: ClickHouse database name %q: use letters, digits and _ only", o.Database)
	}
	if o.Username == "" {
		o.Username = "default"
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	open := func(db string) (clickhouse.Conn, error) {
		return clickhouse.Open(&clickhouse.Options{
			Addr:        []string{o.Addr},
			Protocol:    clickhouse.Native,
			Auth:        clickhouse.Auth{Database: db, Username: o.Username, Password: o.Password},
			Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
			Settings:    clickhouse.Settings{"max_execution_time": 60},
			DialTimeout: o.DialTimeout,
			ReadTimeout: 60 * time.Second,
		})
	}
	boot, err := open("default")
	if err != nil {
		return nil, fmt.Errorf("storage: ClickHouse at %s: %w", o.Addr, err)
	}
	err = boot.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+o.Database)
	boot.Close()
	if err != nil {
		return nil, fmt.Errorf("storage: ClickHouse at %s: create database %s: %w", o.Addr, o.Database, err)
	}
	conn, err := open(o.Database)
	if err != nil {
		return nil, fmt.Errorf("storage: ClickHouse at %s: %w", o.Addr, err)
	}
	return conn, nil
}

// MigrateClickHouse applies the component's migrations that have not run
// yet. ClickHouse has no transactions, so two data planes starting at once
// may both run a migration before either records it: tables are created
// with IF NOT EXISTS, and a column that already exists (18.16 has no ADD
// COLUMN IF NOT EXISTS) counts as added.
func MigrateClickHouse(ctx context.Context, conn clickhouse.Conn, component string, migrations []string) error {
	if err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component String,
		version UInt32,
		applied_at DateTime
	) ENGINE = ReplacingMergeTree ORDER BY (component, version)`); err != nil {
		return fmt.Errorf("storage: create schema_migrations: %w", err)
	}
	var have uint32
	if err := conn.QueryRow(ctx, `SELECT max(version) FROM schema_migrations WHERE component = ?`, component).Scan(&have); err != nil {
		return fmt.Errorf("storage: read the %s schema version: %w", component, err)
	}
	if int(have) > len(migrations) {
		return fmt.Errorf("storage: the %s schema is at version %d, newer than this binary knows (%d); run a newer databridge",
			component, have, len(migrations))
	}
	for v := int(have) + 1; v <= len(migrations); v++ {
		if err := conn.Exec(ctx, migrations[v-1]); err != nil && !duplicateColumn(err) {
			return fmt.Errorf("storage: %s migration %d: %w", component, v, err)
		}
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (component, version, applied_at)")
		if err != nil {
			return fmt.Errorf("storage: record %s migration %d: %w", component, v, err)
		}
		if err := batch.Append(component, uint32(v), time.Now().UTC()); err != nil {
			return fmt.Errorf("storage: record %s migration %d: %w", component, v, err)
		}
		if err := batch.Send(); err != nil {
			return fmt.Errorf("storage: record %s migration %d: %w", component, v, err)
		}
	}
	return nil
}

// duplicateColumn reports ClickHouse's "column with this name already exists" (code 44 in 18.16, 15 in later servers).
func duplicateColumn(err error) bool {
	var e *clickhouse.Exception
	return errors.As(err, &e) && (e.Code == 15 || e.Code == 44 && strings.Contains(e.Message, "already exists"))
}
