//! The data set the backup/restore tests and the throughput bench load: the things a logical dump
//! most easily gets wrong (several databases, one with a hyphen in its name, utf8mb4 text with
//! emoji, CJK and control characters, binary blobs covering every byte value, NULL beside empty
//! strings, multi-megabyte rows, 100k+ rows, a view, a trigger, a procedure, a function, an event)
//! and a [`Snapshot`] of everything that must survive: per-table CHECKSUM TABLE, row counts and
//! definitions, and the views, triggers, routines and events.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::mariadb::{MariaDb, MariaDbError, sql_ident, sql_string};

/// The application databases the data set creates.
pub const DATABASES: [&str; 3] = ["dj_app", "dj_crm", "dj-ops"];

/// How much data to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSet {
    /// Rows in `dj-ops`.`events` (the 100k-row table).
    pub event_rows: usize,
    /// Rows in `dj_app`.`documents`, each with a blob of `document_bytes`.
    pub documents: usize,
    pub document_bytes: usize,
    /// Rows in `dj_app`.`users` and `dj_crm`.`customers`.
    pub people: usize,
}

impl DataSet {
    /// The full set: 120k event rows and 6 rows of 3 MiB blobs (about 70 MB of dump).
    pub const FULL: Self = Self {
        event_rows: 120_000,
        documents: 6,
        document_bytes: 3 << 20,
        people: 2_000,
    };
    /// The same shapes, small enough for tests that only need "some data".
    pub const SMALL: Self = Self {
        event_rows: 2_000,
        documents: 2,
        document_bytes: 64 << 10,
        people: 100,
    };

    /// Creates the databases and loads every table through the admin account.
    pub fn load(&self, server: &MariaDb) -> Result<(), MariaDbError> {
        server.execute(SCHEMA.as_bytes())?;
        server.execute(&self.people_sql())?;
        server.execute(&self.documents_sql())?;
        for start in (0..self.event_rows).step_by(EVENT_BATCH) {
            let end = (start + EVENT_BATCH).min(self.event_rows);
            server.execute(&events_sql(start..end))?;
        }
        Ok(())
    }

    fn people_sql(&self) -> Vec<u8> {
        let mut rng = Rng(0x5eed_0001);
        let mut users = Vec::with_capacity(self.people);
        let mut customers = Vec::with_capacity(self.people);
        for id in 1..=self.people {
            let name = tricky_text(id, 3);
            // NULL and '' must stay distinct: every third row has each.
            let nickname = match id % 3 {
                0 => "NULL".to_owned(),
                1 => "''".to_owned(),
                _ => utf8_literal(&format!("nick{id}")),
            };
            let bio = if id % 5 == 0 {
                "NULL".to_owned()
            } else {
                utf8_literal(&tricky_text(id * 7, 12))
            };
            let avatar = match id % 4 {
                0 => "NULL".to_owned(),
                1 => "X''".to_owned(),
                _ => hex_literal(&rng.bytes(64 + id % 100)),
            };
            users.push(format!(
                "({id}, {}, {nickname}, {bio}, {avatar}, {}.{:06}, {:e}, {}, \
                 '2024-02-29 12:34:56.{:06}', {})",
                utf8_literal(&name),
                id * 1_000_003 % 99_999,
                id * 37 % 1_000_000,
                (id as f64) * 1.000_000_1e-3,
                id % 2,
                id % 1_000_000,
                utf8_literal(&format!(
                    r#"{{"id": {id}, "tags": ["a", "数据"], "ok": true}}"#
                )),
            ));
            let email = if id % 4 == 0 {
                "NULL".to_owned()
            } else {
                utf8_literal(&format!("user{id}@例え.jp"))
            };
            customers.push(format!(
                "({id}, {}, {email}, {})",
                utf8_literal(&tricky_text(id * 3, 2)),
                utf8_literal(&tricky_text(id, 30)),
            ));
        }
        // The trigger fires for every loaded user too, so `audit` gets one row each.
        let mut sql = String::new();
        for chunk in users.chunks(500) {
            let _ = writeln!(
                sql,
                "INSERT INTO dj_app.users (id, name, nickname, bio, avatar, balance, score, \
                 active, created, meta) VALUES {};",
                chunk.join(",")
            );
        }
        for chunk in customers.chunks(500) {
            let _ = writeln!(
                sql,
                "INSERT INTO dj_crm.customers (id, name, email, notes) VALUES {};",
                chunk.join(",")
            );
        }
        sql.into_bytes()
    }

    fn documents_sql(&self) -> Vec<u8> {
        let mut rng = Rng(0x5eed_0002);
        let mut sql = Vec::new();
        for id in 1..=self.documents {
            let mut content = rng.bytes(self.document_bytes);
            // Every byte value, including the ones dumps like to mangle (0, \n, \r, ', \, 0x1a).
            let all: Vec<u8> = (0..=255u8).collect();
            content[..256].copy_from_slice(&all);
            let body = tricky_text(id, self.document_bytes / 64);
            let row = format!(
                "INSERT INTO dj_app.documents (id, title, body, content) VALUES ({id}, {}, {}, {});\n",
                utf8_literal(&format!("文書 {id} 📄")),
                utf8_literal(&body),
                hex_literal(&content),
            );
            sql.extend_from_slice(row.as_bytes());
        }
        sql
    }
}

const EVENT_BATCH: usize = 2_000;

fn events_sql(ids: std::ops::Range<usize>) -> Vec<u8> {
    let mut rng = Rng(0x5eed_0003 ^ ids.start as u64);
    let levels = ["debug", "info", "warn", "error"];
    let rows: Vec<String> = ids
        .map(|id| {
            let value = if id % 10 == 0 {
                "NULL".to_owned()
            } else {
                format!("{:e}", (id as f64).sqrt() * 3.25)
            };
            format!(
                "({id}, '2025-01-01 00:00:00' + INTERVAL {id} SECOND + INTERVAL {} MICROSECOND, '{}', \
                 'host-{}', {}, {}, {value})",
                id % 1000 * 1000,
                levels[id % levels.len()],
                id % 17,
                utf8_literal(&tricky_text(id, 4)),
                hex_literal(&rng.bytes(16)),
            )
        })
        .collect();
    format!(
        "INSERT INTO `dj-ops`.events (id, ts, level, host, message, payload, value) VALUES {};\n",
        rows.join(",")
    )
    .into_bytes()
}

const SCHEMA: &str = r#"
CREATE DATABASE dj_app CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE dj_crm CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE DATABASE `dj-ops` CHARACTER SET utf8mb4;
CREATE TABLE dj_app.users (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(200) NOT NULL,
  nickname VARCHAR(50) NULL,
  bio TEXT NULL,
  avatar VARBINARY(255) NULL,
  balance DECIMAL(20,6) NOT NULL,
  score DOUBLE NOT NULL,
  active TINYINT(1) NOT NULL,
  created DATETIME(6) NOT NULL,
  meta JSON NULL,
  KEY by_name (name)
) ENGINE=InnoDB;
CREATE TABLE dj_app.audit (
  id INT PRIMARY KEY AUTO_INCREMENT,
  user_id INT NOT NULL,
  action VARCHAR(300) NOT NULL
) ENGINE=InnoDB;
CREATE TABLE dj_app.documents (
  id INT PRIMARY KEY,
  title VARCHAR(100) NOT NULL,
  body LONGTEXT NOT NULL,
  content LONGBLOB NOT NULL
) ENGINE=InnoDB;
CREATE TABLE dj_app.empty_table (id INT PRIMARY KEY, note VARCHAR(10)) ENGINE=InnoDB;
CREATE TABLE dj_app.markers (name VARCHAR(50) PRIMARY KEY, value VARCHAR(100) NOT NULL);
INSERT INTO dj_app.markers VALUES ('restore-check', 'at-backup-time');
CREATE TRIGGER dj_app.users_after_insert AFTER INSERT ON dj_app.users FOR EACH ROW
  INSERT INTO dj_app.audit (user_id, action) VALUES (NEW.id, CONCAT('created ', NEW.name));
CREATE VIEW dj_app.active_users AS
  SELECT id, name, nickname FROM dj_app.users WHERE active = 1;
CREATE TABLE dj_crm.customers (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(200) NOT NULL,
  email VARCHAR(200) NULL,
  notes TEXT NOT NULL
) ENGINE=InnoDB;
DELIMITER ;;
CREATE PROCEDURE dj_crm.add_customer(IN p_name VARCHAR(200), OUT p_id INT)
  MODIFIES SQL DATA
BEGIN
  INSERT INTO dj_crm.customers (name, email, notes) VALUES (p_name, NULL, '');
  SET p_id = LAST_INSERT_ID();
END;;
CREATE FUNCTION dj_crm.customer_count() RETURNS INT
  READS SQL DATA
BEGIN
  RETURN (SELECT COUNT(*) FROM dj_crm.customers);
END;;
DELIMITER ;
CREATE EVENT dj_crm.nightly_cleanup ON SCHEDULE EVERY 1 DAY DISABLE
  DO DELETE FROM dj_crm.customers WHERE name = '';
CREATE TABLE `dj-ops`.events (
  id BIGINT PRIMARY KEY,
  ts DATETIME(6) NOT NULL,
  level ENUM('debug','info','warn','error') NOT NULL,
  host VARCHAR(64) NOT NULL,
  message VARCHAR(500) NOT NULL,
  payload VARBINARY(64) NOT NULL,
  value DOUBLE NULL,
  KEY by_ts (ts)
) ENGINE=InnoDB;
"#;

/// Text built from fragments that break naive escaping or charset handling (the step 5 is coprime
/// to the fragment count, so `pieces >= 14` uses every fragment).
fn tricky_text(seed: usize, pieces: usize) -> String {
    const FRAGMENTS: [&str; 14] = [
        "数据跳跃平台",
        "😀🚀🎉",
        "Ünïcödé café",
        "it's \"quoted\"",
        "back\\slash \\n not-a-newline",
        "line\nbreak\r\n",
        "tab\there",
        "nul\0byte",
        "ctrl-z\u{1a}end",
        "𠜎𠜱 ext-B",
        "مرحبا بالعالم",
        "👩‍👩‍👧 zwj",
        "-- not a comment; /* nor this */",
        "",
    ];
    (0..pieces)
        .map(|i| FRAGMENTS[(seed.wrapping_mul(31) + i * 5) % FRAGMENTS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A utf8mb4 literal spelled in hex, so the loader itself cannot get the escaping wrong.
fn utf8_literal(text: &str) -> String {
    format!("_utf8mb4 {}", hex_literal(text.as_bytes()))
}

fn hex_literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2 + 3);
    out.push_str("X'");
    for byte in bytes {
        let _ = write!(out, "{byte:02X}");
    }
    out.push('\'');
    out
}

/// xorshift64*: deterministic bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// One table's contents and definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableState {
    pub rows: u64,
    pub checksum: String,
    pub definition: String,
}

/// Everything in the application databases that a restore must bring back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `db.table` → state, base tables only.
    pub tables: BTreeMap<String, TableState>,
    /// `db.view` → definition.
    pub views: BTreeMap<String, String>,
    /// `db.trigger` → "timing event table: statement".
    pub triggers: BTreeMap<String, String>,
    /// `db.routine` → "type: definition".
    pub routines: BTreeMap<String, String>,
    /// `db.event` → "status: definition".
    pub events: BTreeMap<String, String>,
}

impl Snapshot {
    /// Reads the state of `databases` from the server.
    pub fn take(server: &MariaDb, databases: &[&str]) -> Result<Self, MariaDbError> {
        let in_list = databases
            .iter()
            .map(|db| sql_string(db))
            .collect::<Vec<_>>()
            .join(",");
        let mut tables = BTreeMap::new();
        let listing = server.query(&format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA IN ({in_list}) AND TABLE_TYPE = 'BASE TABLE' \
             ORDER BY TABLE_SCHEMA, TABLE_NAME"
        ))?;
        for line in listing.lines() {
            let Some((db, table)) = line.split_once('\t') else {
                continue;
            };
            let qualified = format!("{}.{}", sql_ident(db), sql_ident(table));
            let rows = server
                .query(&format!("SELECT COUNT(*) FROM {qualified}"))?
                .trim()
                .parse()
                .unwrap_or(u64::MAX);
            let checksum =
                second_column(&server.query(&format!("CHECKSUM TABLE {qualified} EXTENDED"))?);
            let definition =
                second_column(&server.query(&format!("SHOW CREATE TABLE {qualified}"))?);
            tables.insert(
                format!("{db}.{table}"),
                TableState {
                    rows,
                    checksum,
                    definition,
                },
            );
        }
        let keyed = |sql: String| -> Result<BTreeMap<String, String>, MariaDbError> {
            Ok(server
                .query(&sql)?
                .lines()
                .filter_map(|line| line.split_once('\t'))
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect())
        };
        Ok(Self {
            tables,
            views: keyed(format!(
                "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), VIEW_DEFINITION \
                 FROM information_schema.VIEWS WHERE TABLE_SCHEMA IN ({in_list})"
            ))?,
            triggers: keyed(format!(
                "SELECT CONCAT(TRIGGER_SCHEMA, '.', TRIGGER_NAME), CONCAT(ACTION_TIMING, ' ', \
                 EVENT_MANIPULATION, ' ', EVENT_OBJECT_TABLE, ': ', ACTION_STATEMENT) \
                 FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ({in_list})"
            ))?,
            routines: keyed(format!(
                "SELECT CONCAT(ROUTINE_SCHEMA, '.', ROUTINE_NAME), CONCAT(ROUTINE_TYPE, ': ', \
                 ROUTINE_DEFINITION) FROM information_schema.ROUTINES \
                 WHERE ROUTINE_SCHEMA IN ({in_list})"
            ))?,
            events: keyed(format!(
                "SELECT CONCAT(EVENT_SCHEMA, '.', EVENT_NAME), CONCAT(STATUS, ': ', \
                 EVENT_DEFINITION) FROM information_schema.EVENTS \
                 WHERE EVENT_SCHEMA IN ({in_list})"
            ))?,
        })
    }

    /// Rows across all tables (to show the snapshot is not trivially empty).
    pub fn total_rows(&self) -> u64 {
        self.tables.values().map(|table| table.rows).sum()
    }
}

fn second_column(output: &str) -> String {
    output
        .split_once('\t')
        .map(|(_, rest)| rest.trim_end().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricky_text_mixes_multibyte_and_control_characters() {
        let text = tricky_text(1, 14);
        assert!(text.contains('😀') && text.contains('数') && text.contains('\0'));
    }

    #[test]
    fn hex_literal_spells_every_byte() {
        assert_eq!(hex_literal(&[0, 0x1a, 0xff]), "X'001AFF'");
        assert_eq!(utf8_literal("é"), "_utf8mb4 X'C3A9'");
    }

    #[test]
    fn rng_is_deterministic_and_sized() {
        let (mut a, mut b) = (Rng(7), Rng(7));
        assert_eq!(a.bytes(13), b.bytes(13));
        assert_eq!(a.bytes(5).len(), 5);
    }
}
