//! Indexed text search and the fleet summary. The `q` filter (case-insensitive substring of
//! endpoint, serial, model or customer) is served by a trigram index on each engine (migration
//! 0005): SQLite's FTS5 `trigram` tokenizer, PostgreSQL's `pg_trgm` GIN index. Both indexes only
//! narrow the candidates; the `LIKE`/`ILIKE` test of each column stays in the query, so the
//! answer is exactly the one a full scan gives. Queries shorter than
//! [`MIN_INDEXED_SEARCH_CHARS`] have no trigram to look up and are answered by a scan.

use sqlx::AssertSqlSafe;

use super::sql::{self, Bind, BuiltQuery, Dialect};
use super::{Backend, Store, StoreError};
use crate::fleet::lifecycle::LifecycleState;
use crate::fleet::registry::{Connectivity, DeviceFilter, PageRequest};

/// Shortest query the trigram indexes can serve (a trigram is 3 characters).
pub const MIN_INDEXED_SEARCH_CHARS: usize = 3;

/// SQLite: a list query looks up the search index only when it has fewer candidates than this.
/// A query matching much of the fleet ("meter") is answered faster by walking the endpoint order
/// and stopping after one page than by fetching and sorting every match.
const SQLITE_INDEX_CANDIDATES: i64 = 2000;

/// The PostgreSQL index expression of migration 0005, verbatim (with the `d` alias): the planner
/// uses the index only for this exact expression.
const PG_SEARCH_EXPRESSION: &str = "(d.endpoint || E'\\x1f' || d.serial || E'\\x1f' || d.model \
    || E'\\x1f' || COALESCE(d.customer, ''))";

/// How the text condition of a device query is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SearchPlan {
    /// Candidates from the trigram index, then the exact test (for long enough queries).
    Index,
    /// The exact test on each row the rest of the query visits.
    Scan,
}

/// The trimmed search text of a filter, if any.
pub(crate) fn search_text(filter: &DeviceFilter) -> Option<&str> {
    filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn indexable(text: &str) -> bool {
    text.chars().count() >= MIN_INDEXED_SEARCH_CHARS
}

/// An FTS5 query that matches `text` as one phrase: with the trigram tokenizer, rows whose
/// column contains `text` (ignoring case). Double quotes inside are doubled (FTS5 string syntax).
pub(crate) fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The SQL condition for `text` with its values bound in `bind` order. `like_pattern` is the
/// `%…%` pattern with LIKE wildcards escaped.
pub(crate) fn condition(
    text: &str,
    like_pattern: String,
    dialect: Dialect,
    plan: SearchPlan,
    bind: &mut dyn FnMut(Bind) -> String,
) -> String {
    let p = bind(Bind::Text(like_pattern));
    // SQLite's LIKE ignores ASCII case already; PostgreSQL needs ILIKE.
    let like = match dialect {
        Dialect::Sqlite => "LIKE",
        Dialect::Postgres => "ILIKE",
    };
    let exact = format!(
        "(d.endpoint {like} {p} ESCAPE '\\' OR d.serial {like} {p} ESCAPE '\\' \
         OR d.model {like} {p} ESCAPE '\\' OR d.customer {like} {p} ESCAPE '\\')"
    );
    if plan == SearchPlan::Scan || !indexable(text) {
        return exact;
    }
    match dialect {
        Dialect::Sqlite => {
            let m = bind(Bind::Text(fts_phrase(text)));
            format!(
                "d.id IN (SELECT rowid FROM device_search WHERE device_search MATCH {m}) \
                 AND {exact}"
            )
        }
        // The planner weighs the index against the endpoint order itself (it has statistics
        // on the index expression), so both conditions are always given.
        Dialect::Postgres => {
            format!("{PG_SEARCH_EXPRESSION} {like} {p} ESCAPE '\\' AND {exact}")
        }
    }
}

/// Devices per lifecycle state and connectivity, for the filtered fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSummary {
    pub total: u64,
    /// Every state, in [`LifecycleState::ALL`] order, zero counts included.
    pub by_state: Vec<(LifecycleState, u64)>,
    /// Every connectivity, in [`Connectivity::ALL`] order, zero counts included.
    pub by_connectivity: Vec<(Connectivity, u64)>,
}

impl DeviceSummary {
    pub fn state(&self, state: LifecycleState) -> u64 {
        self.by_state
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }

    pub fn connectivity(&self, connectivity: Connectivity) -> u64 {
        self.by_connectivity
            .iter()
            .find(|(c, _)| *c == connectivity)
            .map_or(0, |(_, n)| *n)
    }
}

/// `SELECT state, connectivity, COUNT(*) … GROUP BY state, connectivity` over the filter: at most
/// 18 groups, from the (state, connectivity) index when unfiltered.
pub(crate) fn summary_query(filter: &DeviceFilter, dialect: Dialect) -> BuiltQuery {
    let (from_where, binds) = sql::from_where_text(filter, dialect, SearchPlan::Index);
    BuiltQuery {
        sql: format!(
            "SELECT d.state, d.connectivity, COUNT(*){from_where} \
             GROUP BY d.state, d.connectivity"
        ),
        binds,
    }
}

async fn fetch_groups(
    backend: &Backend,
    q: BuiltQuery,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    macro_rules! run {
        ($pool:expr) => {{
            let mut query = sqlx::query_as::<_, (String, String, i64)>(AssertSqlSafe(q.sql));
            for bind in q.binds {
                query = match bind {
                    Bind::Text(text) => query.bind(text),
                    Bind::Int(int) => query.bind(int),
                };
            }
            query.fetch_all($pool).await
        }};
    }
    match backend {
        Backend::Sqlite(b) => run!(&b.pool),
        Backend::Postgres(b) => run!(&b.pool),
    }
}

impl Store {
    /// How many devices match `filter`, in total and per lifecycle state and connectivity (the
    /// console's fleet summary). One grouped query; every state and connectivity is present.
    pub async fn device_summary(&self, filter: &DeviceFilter) -> Result<DeviceSummary, StoreError> {
        let groups = fetch_groups(&self.backend, summary_query(filter, self.dialect())).await?;
        let mut by_state: Vec<(LifecycleState, u64)> =
            LifecycleState::ALL.iter().map(|s| (*s, 0)).collect();
        let mut by_connectivity: Vec<(Connectivity, u64)> =
            Connectivity::ALL.iter().map(|c| (*c, 0)).collect();
        let mut total = 0;
        for (state, connectivity, count) in groups {
            let count = u64::try_from(count).unwrap_or(0);
            let state: LifecycleState = state
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("device state {state:?}: {e}")))?;
            let connectivity: Connectivity = connectivity.parse().map_err(|e| {
                StoreError::Corrupt(format!("device connectivity {connectivity:?}: {e}"))
            })?;
            if let Some(entry) = by_state.iter_mut().find(|(s, _)| *s == state) {
                entry.1 += count;
            }
            if let Some(entry) = by_connectivity.iter_mut().find(|(c, _)| *c == connectivity) {
                entry.1 += count;
            }
            total += count;
        }
        Ok(DeviceSummary {
            total,
            by_state,
            by_connectivity,
        })
    }

    /// How a list query evaluates its search text. PostgreSQL's planner decides for itself;
    /// SQLite's cannot (a virtual table has no statistics), so a bounded count of the index's
    /// candidates decides: few → index, many → walk the endpoint order and stop after a page.
    pub(crate) async fn list_search_plan(
        &self,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> Result<SearchPlan, StoreError> {
        let Some(text) = search_text(filter) else {
            return Ok(SearchPlan::Scan);
        };
        let Backend::Sqlite(b) = &self.backend else {
            return Ok(SearchPlan::Index);
        };
        if !indexable(text) {
            return Ok(SearchPlan::Scan);
        }
        let probe = BuiltQuery {
            sql: "SELECT COUNT(*) FROM (SELECT rowid FROM device_search \
                  WHERE device_search MATCH $1 LIMIT $2)"
                .to_owned(),
            binds: vec![
                Bind::Text(fts_phrase(text)),
                Bind::Int(SQLITE_INDEX_CANDIDATES.max(i64::from(page.limit) * 4)),
            ],
        };
        let candidates = b.count(probe).await?;
        Ok(
            if candidates < SQLITE_INDEX_CANDIDATES.max(i64::from(page.limit) * 4) {
                SearchPlan::Index
            } else {
                SearchPlan::Scan
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(q: &str) -> DeviceFilter {
        DeviceFilter {
            search: Some(q.to_owned()),
            ..DeviceFilter::default()
        }
    }

    #[test]
    fn fts_phrase_quotes_and_doubles_inner_quotes() {
        assert_eq!(fts_phrase("abc"), "\"abc\"");
        assert_eq!(fts_phrase("a\"b OR c"), "\"a\"\"b OR c\"");
    }

    #[test]
    fn long_queries_use_the_index_short_ones_scan() {
        let q = summary_query(&filter("meter-12"), Dialect::Sqlite);
        assert!(q.sql.contains("device_search MATCH $2"), "{}", q.sql);
        assert!(q.sql.contains("d.customer LIKE $1"));
        assert_eq!(q.binds[1], Bind::Text("\"meter-12\"".into()));

        let q = summary_query(&filter("ab"), Dialect::Sqlite);
        assert!(!q.sql.contains("MATCH"), "{}", q.sql);
        assert!(q.sql.contains("d.endpoint LIKE $1"));

        let q = summary_query(&filter("Acme"), Dialect::Postgres);
        assert!(q.sql.contains(&format!("{PG_SEARCH_EXPRESSION} ILIKE $1")));
        assert!(q.sql.contains("d.model ILIKE $1"));
        // Multi-byte text counts characters, not bytes.
        let q = summary_query(&filter("äö"), Dialect::Postgres);
        assert!(!q.sql.contains("COALESCE"), "{}", q.sql);
    }

    #[test]
    fn summary_groups_by_state_and_connectivity() {
        let q = summary_query(&DeviceFilter::default(), Dialect::Postgres);
        assert_eq!(
            q.sql,
            "SELECT d.state, d.connectivity, COUNT(*) FROM devices d \
             GROUP BY d.state, d.connectivity"
        );
        assert!(q.binds.is_empty());
    }
}
