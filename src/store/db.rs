//! One small SQL interface over the two databases the store runs on:
//! SQLite (embedded, `rusqlite`) and PostgreSQL (`postgres`). The store's
//! queries are written once, with numbered `?N` parameters, in the SQL both
//! understand; the few that differ ask `dialect()`.
//!
//! The store is synchronous and runs on blocking threads, where a nested
//! tokio runtime may not be started: PostgreSQL connections are driven by
//! one small runtime of their own, and a query's future (which only talks
//! to its connection over channels) is awaited by parking the calling thread.
//!
//! Values cross as four kinds (null, integer, real, text), as SQLite stores
//! them: booleans are 0/1 integers in both databases, enums their names.
//! PostgreSQL's own types are converted at the edge, whatever the server
//! infers a parameter or a result column to be.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake};

use bytes::BytesMut;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

pub type Result<T, E = DbError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connecting to PostgreSQL: {0}")]
    Connect(String),
    #[error("query returned no rows")]
    NoRows,
    #[error("column {column}: {message}")]
    Type { column: usize, message: String },
}

/// PostgreSQL's own message and code (the error's `Display` is only "db error").
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Which SQL a query may use where the two differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// A Rust value stored in a column.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

/// A Rust value read from a column.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self, String>;
}

macro_rules! int_value {
    ($($t:ty),+) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(*self as i64)
            }
        }
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self, String> {
                match v {
                    Value::Int(i) => <$t>::try_from(*i).map_err(|e| e.to_string()),
                    other => Err(format!("expected an integer, found {other:?}")),
                }
            }
        }
    )+};
}

int_value!(i64, i32, u32, usize);

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(*self as i64)
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, String> {
        i64::from_value(v).map(|i| i != 0)
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for f32 {
    fn to_value(&self) -> Value {
        Value::Real(*self as f64)
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}

impl FromValue for f32 {
    fn from_value(v: &Value) -> Result<Self, String> {
        f64::from_value(v).map(|f| f as f32)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_value)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// A query's parameters: `params![a, b]`, `[x]` or `()`.
pub trait Params {
    fn values(self) -> Vec<Value>;
}

impl Params for () {
    fn values(self) -> Vec<Value> {
        Vec::new()
    }
}

impl Params for &[&dyn ToValue] {
    fn values(self) -> Vec<Value> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

impl<T: ToValue, const N: usize> Params for [T; N] {
    fn values(self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}

/// Parameters of different types: `params![id, text, now]`.
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        &[$(&$p as &dyn $crate::store::db::ToValue),*] as &[&dyn $crate::store::db::ToValue]
    };
}
pub(crate) use params;

/// One result row.
pub struct Row(Vec<Value>);

impl Row {
    pub fn get<T: FromValue>(&self, column: usize) -> Result<T> {
        let v = self.0.get(column).ok_or(DbError::Type { column, message: "no such column".into() })?;
        T::from_value(v).map_err(|message| DbError::Type { column, message })
    }
}

/// `query_row(...).optional()`: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A connection to either database. Not shared between threads: the store
/// hands each one out behind a mutex or from a pool.
pub struct Conn(Inner);

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<Pg>>),
}

struct Pg {
    client: tokio_postgres::Client,
    /// Prepared statements by their SQLite-style text.
    statements: HashMap<String, tokio_postgres::Statement>,
}

/// The runtime that drives every PostgreSQL connection's socket.
fn pg_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("xiaoer-postgres")
            .enable_all()
            .build()
            .expect("a runtime for PostgreSQL connections")
    })
}

/// Waits for `fut` on this thread (parked while it is pending).
fn wait<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

type PgConnection = tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

/// Connects (on `pg_runtime`, at most 10 s); the caller drives the socket.
///
/// Waits are bounded, so a replica that stalls while holding the write lock
/// (stopped, cut off) cannot hold up the others: waiting for a lock gives
/// up after 10 s, an idle open transaction is ended by the server after
/// 60 s, and a silent peer is noticed by TCP keepalives after 30 s.
fn pg_open(url: &str) -> Result<(tokio_postgres::Client, PgConnection)> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config
        .options("-c lock_timeout=10s -c idle_in_transaction_session_timeout=60s")
        .keepalives_idle(std::time::Duration::from_secs(30))
        .connect_timeout(std::time::Duration::from_secs(10));
    let connecting = pg_runtime().spawn(async move {
        tokio::time::timeout(std::time::Duration::from_secs(10), config.connect(tokio_postgres::NoTls)).await
    });
    Ok(wait(connecting)
        .map_err(|e| DbError::Connect(e.to_string()))?
        .map_err(|_| DbError::Connect("timed out after 10 s".into()))??)
}

/// A new connection, its socket driven by `pg_runtime`.
fn pg_connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = pg_open(url)?;
    pg_runtime().spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// Every writing transaction on PostgreSQL takes this advisory lock, so
/// writes are serialised across replicas as SQLite serialises them: the
/// store's read-check-write steps (ownership, versions) stay correct.
const WRITE_LOCK: i64 = 0x7869_616f_6572;

impl Conn {
    pub fn sqlite(conn: rusqlite::Connection) -> Conn {
        Conn(Inner::Sqlite(conn))
    }

    pub fn postgres(url: &str) -> Result<Conn> {
        let client = pg_connect(url)?;
        Ok(Conn(Inner::Postgres(Box::new(RefCell::new(Pg { client, statements: HashMap::new() })))))
    }

    pub fn dialect(&self) -> Dialect {
        match &self.0 {
            Inner::Sqlite(_) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Whether the connection is gone (PostgreSQL restarted, network).
    pub fn is_closed(&self) -> bool {
        match &self.0 {
            Inner::Sqlite(_) => false,
            Inner::Postgres(pg) => pg.borrow().client.is_closed(),
        }
    }

    /// The SQLite connection underneath (pragmas); None on PostgreSQL.
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.0 {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    /// Rows changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        let values = params.values();
        match &self.0 {
            Inner::Sqlite(c) => Ok(c.prepare_cached(sql)?.execute(rusqlite::params_from_iter(values.iter()))?),
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = pg.statement(sql)?;
                Ok(wait(pg.client.execute(&stmt, &pg_params(&values)))? as usize)
            }
        }
    }

    /// Statements without parameters, separated by `;`.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.0 {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(pg) => Ok(wait(pg.borrow().client.batch_execute(sql))?),
        }
    }

    /// Every row, each through `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        Ok(self.rows(sql, params)?.iter().map(f).collect::<Vec<_>>().into_iter())
    }

    /// The first row through `f`; no row is `DbError::NoRows` (see `optional`).
    pub fn query_row<T>(&self, sql: &str, params: impl Params, f: impl FnOnce(&Row) -> Result<T>) -> Result<T> {
        f(self.rows(sql, params)?.first().ok_or(DbError::NoRows)?)
    }

    fn rows(&self, sql: &str, params: impl Params) -> Result<Vec<Row>> {
        let values = params.values();
        match &self.0 {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let n = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(Row((0..n).map(|i| r.get_ref(i).map(sqlite_value)).collect::<Result<_, _>>()?));
                }
                Ok(out)
            }
            Inner::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let stmt = pg.statement(sql)?;
                let rows = wait(pg.client.query(&stmt, &pg_params(&values)))?;
                rows.iter()
                    .map(|r| {
                        Ok(Row((0..r.len())
                            .map(|i| r.try_get::<_, PgValue>(i).map(|v| v.0))
                            .collect::<Result<_, _>>()?))
                    })
                    .collect()
            }
        }
    }

    /// `rusqlite`-style: the statement text, run later with `query_map`.
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement { conn: self, sql: sql.to_string() })
    }

    /// Starts a writing transaction: it holds the database's write lock
    /// from its first statement (SQLite `BEGIN IMMEDIATE`; on PostgreSQL
    /// the advisory lock), and rolls back unless committed.
    pub fn transaction(&self) -> Result<Transaction<'_>> {
        match self.dialect() {
            Dialect::Sqlite => self.execute_batch("BEGIN IMMEDIATE")?,
            Dialect::Postgres => {
                self.execute_batch("BEGIN")?;
                if let Err(e) = self.execute_batch(&format!("SELECT pg_advisory_xact_lock({WRITE_LOCK})")) {
                    let _ = self.execute_batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        Ok(Transaction { conn: self, done: false })
    }
}

/// Calls `wake` on every PostgreSQL notification on `channel` (LISTEN, on
/// a connection of its own) while the returned listener lives.
pub fn listen(url: &str, channel: &str, wake: impl Fn() + Send + 'static) -> Result<Listener> {
    use futures_util::StreamExt;
    let (client, mut connection) = pg_open(url)?;
    let task = pg_runtime().spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(_)) => wake(),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("PostgreSQL notifications ended: {e}");
                    return;
                }
            }
        }
    });
    let listener = Listener { client, task };
    wait(listener.client.batch_execute(&format!("LISTEN {channel}")))?;
    Ok(listener)
}

/// See `listen`: stops listening when dropped.
pub struct Listener {
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Whether notifications stopped (PostgreSQL restarted): listen again.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.task.is_finished()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// See `Conn::prepare`.
pub struct Statement<'a> {
    conn: &'a Conn,
    sql: String,
}

impl Statement<'_> {
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        self.conn.query_map(&self.sql, params, f)
    }
}

/// See `Conn::transaction`.
pub struct Transaction<'a> {
    conn: &'a Conn,
    done: bool,
}

impl Transaction<'_> {
    /// Commits; when that fails the transaction is rolled back (on drop),
    /// so the connection is never left inside it.
    pub fn commit(mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        self.done = true;
        Ok(())
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Nothing to report to: the error that ended the transaction is on its way up.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Pg {
    fn statement(&mut self, sql: &str) -> Result<tokio_postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let stmt = wait(self.client.prepare(&postgres_sql(sql)))?;
        self.statements.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

/// SQLite's `?N` parameters as PostgreSQL's `$N` (outside string literals).
fn postgres_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => quoted = !quoted,
            '?' if !quoted => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
    }
}

fn pg_params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

/// A parameter as the type PostgreSQL inferred for it.
impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT4) => (*i as f32).to_sql(ty, out),
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Int(i), _) => i.to_string().to_sql(&Type::TEXT, out),
            (Value::Real(f), &Type::FLOAT4) => (*f as f32).to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Real(f), _) => f.to_string().to_sql(&Type::TEXT, out),
            (Value::Text(s), _) => s.as_str().to_sql(&Type::TEXT, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A result column of any type, read as a `Value`.
struct PgValue(Value);

impl<'a> FromSql<'a> for PgValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(PgValue(match *ty {
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)? as i64),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)? as i64),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)? as f64),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::NUMERIC => numeric(raw)?,
            // JSONB's binary form is a version byte before the text.
            Type::JSONB => Value::Text(std::str::from_utf8(raw.get(1..).unwrap_or_default())?.to_string()),
            _ => Value::Text(std::str::from_utf8(raw)?.to_string()),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(PgValue(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL's binary NUMERIC (what `SUM` and `AVG` of integers return):
/// base-10000 digits; an integer when it has no decimals.
fn numeric(raw: &[u8]) -> Result<Value, BoxError> {
    let word = |i: usize| -> Result<i16, BoxError> {
        Ok(i16::from_be_bytes(raw.get(i..i + 2).ok_or("short numeric")?.try_into()?))
    };
    let (ndigits, weight, sign, scale) = (word(0)?, word(2)?, word(4)? as u16, word(6)?);
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut value = 0f64;
    for i in 0..ndigits.max(0) as usize {
        value += word(8 + 2 * i)? as f64 * 10_000f64.powi(weight as i32 - i as i32);
    }
    if sign == 0x4000 {
        value = -value;
    }
    Ok(if scale == 0 { Value::Int(value as i64) } else { Value::Real(value) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_dollar_numbers_outside_literals() {
        assert_eq!(
            postgres_sql("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn numeric_digits_in_base_ten_thousand() {
        // 123456789: digits [1, 2345, 6789], weight 2.
        let raw = [0, 3, 0, 2, 0, 0, 0, 0, 0, 1, 0x09, 0x29, 0x1A, 0x85];
        assert_eq!(numeric(&raw).unwrap(), Value::Int(123_456_789));
        // -2.5: digits [2, 5000], weight 0, scale 1.
        let raw = [0, 2, 0, 0, 0x40, 0, 0, 1, 0, 2, 0x13, 0x88];
        assert_eq!(numeric(&raw).unwrap(), Value::Real(-2.5));
    }
}
