//! One suite of storage behaviours, run against both stores: SQLite in a temporary file and
//! PostgreSQL in a fresh schema of the machine's server (`SWITCHYARD_TEST_DATABASE_URL`, default
//! `postgresql://postgres@127.0.0.1:5432/test`; `.ci/run` starts the server when it is down).
//!
//! Each behaviour is an `async fn(&dyn Store)`; `suite!` turns every one into a test per backend,
//! so a behaviour cannot be tested on one database and forgotten on the other.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Map, Value};
use switchyard::store::{
    EndUserRecord, KeyFilter, KeyRecord, Page, PostgresStore, SqliteStore, Store, StoreError,
    TeamMember, TeamRecord, UserRecord,
};

// ------------------------------------------------------------------------------ backends

/// A SQLite file in a fresh temporary directory, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-store-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("switchyard.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn postgres_url() -> String {
    std::env::var("SWITCHYARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".to_owned())
}

/// A schema of its own for one test, dropped at the end (also when the test fails).
struct PgSchema {
    admin: sqlx::PgPool,
    name: String,
}

impl PgSchema {
    async fn new() -> PgSchema {
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&postgres_url())
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {} is not answering: {e}", postgres_url()));
        let name = format!("sy_test_{:016x}", fastrand::u64(..));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .unwrap();
        PgSchema { admin, name }
    }

    /// The test URL with the schema as its search path: the way an operator keeps Switchyard in
    /// a schema of its own, so this also tests that it works.
    fn url(&self) -> String {
        let base = postgres_url();
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}options=-c%20search_path%3D{}", self.name)
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url()).await.unwrap()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop runs outside the test's runtime: a small runtime of its own does the cleanup.
        let admin = self.admin.clone();
        let statement = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                // A fresh connection: the pool's belongs to the test's (ended) runtime.
                let options = admin.connect_options();
                if let Ok(mut conn) = sqlx::ConnectOptions::connect(&*options).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

macro_rules! suite {
    ($($behaviour:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let dir = super::TempDir::new();
                    let store = switchyard::store::SqliteStore::open(&dir.db()).await.unwrap();
                    super::$behaviour(&store).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let schema = super::PgSchema::new().await;
                    let store = schema.store().await;
                    super::$behaviour(&store).await;
                    store.close().await;
                }
            )*
        }
    };
}

suite!(
    keys_insert_get_update_delete,
    key_alias_and_token_conflicts,
    list_keys_filters_pages_and_counts,
    teams_users_and_end_users_round_trip,
    load_all_returns_everything,
    changes_since_reports_writes_and_deletions_after_a_time,
    json_fields_round_trip_exactly,
    hostile_strings_round_trip,
    the_store_stamps_updated_at,
);

// ---------------------------------------------------------------------------- records

fn key(token: &str) -> KeyRecord {
    KeyRecord {
        token: token.to_owned(),
        key_name: format!("sk-...{}", last_four(token)),
        key_alias: None,
        models: vec!["gpt-4o".into(), "claude-sonnet".into()],
        rpm_limit: Some(10),
        tpm_limit: Some(10_000),
        max_parallel_requests: Some(2),
        model_rpm_limit: BTreeMap::from([("gpt-4o".into(), 5)]),
        model_tpm_limit: BTreeMap::from([("gpt-4o".into(), 5_000)]),
        metadata: obj(json!({"owner": "search team"})),
        tags: vec!["prod".into()],
        team_id: None,
        user_id: None,
        allowed_routes: vec!["llm_api_routes".into()],
        expires: Some(1_900_000_000_000),
        blocked: false,
        created_by: Some("admin".into()),
        created_at: 1_700_000_000_000,
        updated_at: 0,
        extra: obj(json!({"aliases": {"fast": "gpt-4o-mini"}})),
    }
}

fn last_four(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

fn team(id: &str) -> TeamRecord {
    TeamRecord {
        team_id: id.to_owned(),
        team_alias: Some(format!("{id} alias")),
        models: vec!["gpt-4o".into()],
        rpm_limit: Some(100),
        tpm_limit: None,
        max_parallel_requests: Some(8),
        members: vec![
            TeamMember {
                user_id: Some("alice".into()),
                user_email: Some("alice@example.com".into()),
                role: "admin".into(),
            },
            TeamMember {
                user_id: None,
                user_email: Some("bob@example.com".into()),
                role: "user".into(),
            },
        ],
        metadata: obj(json!({"cost_center": 42})),
        tags: vec!["eu".into()],
        blocked: false,
        created_at: 1_700_000_000_000,
        updated_at: 0,
        extra: obj(json!({"max_budget": 12.5})),
    }
}

fn user(id: &str) -> UserRecord {
    UserRecord {
        user_id: id.to_owned(),
        user_email: Some(format!("{id}@example.com")),
        user_alias: None,
        user_role: "internal_user".into(),
        models: vec![],
        rpm_limit: None,
        tpm_limit: Some(u64::from(u32::MAX) + 1),
        max_parallel_requests: None,
        teams: vec!["t1".into()],
        metadata: Map::new(),
        created_at: 1_700_000_000_000,
        updated_at: 0,
        extra: Map::new(),
    }
}

fn end_user(id: &str) -> EndUserRecord {
    EndUserRecord {
        user_id: id.to_owned(),
        alias: Some("customer".into()),
        blocked: true,
        models: vec!["gpt-4o-mini".into()],
        rpm_limit: Some(3),
        tpm_limit: None,
        max_parallel_requests: None,
        metadata: obj(json!({"plan": "free"})),
        created_at: 1_700_000_000_000,
        updated_at: 0,
        extra: Map::new(),
    }
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// `expected` as stored: the same, with the `updated_at` the store stamped.
fn stored<T: Clone>(expected: &T, actual: &T, set: impl Fn(&mut T, &T)) -> T {
    let mut expected = expected.clone();
    set(&mut expected, actual);
    expected
}

fn same_key(expected: &KeyRecord, actual: &KeyRecord) {
    let expected = stored(expected, actual, |e, a| e.updated_at = a.updated_at);
    assert_eq!(&expected, actual);
}

fn page(number: u32, size: u32) -> Page {
    Page { number, size }
}

// -------------------------------------------------------------------------- behaviours

async fn keys_insert_get_update_delete(store: &dyn Store) {
    store.ping().await.unwrap();
    let mut k = key("a1b2c3d4");
    k.key_alias = Some("search-prod".into());
    k.team_id = Some("t1".into());
    store.insert_key(&k).await.unwrap();

    same_key(&k, &store.key("a1b2c3d4").await.unwrap().unwrap());
    same_key(
        &k,
        &store.key_by_alias("search-prod").await.unwrap().unwrap(),
    );
    assert_eq!(store.key("nope").await.unwrap(), None);
    assert_eq!(store.key_by_alias("nope").await.unwrap(), None);

    k.blocked = true;
    k.rpm_limit = None;
    k.key_alias = Some("search-prod-2".into());
    k.metadata.insert("rotated".into(), json!(true));
    store.update_key(&k).await.unwrap();
    same_key(&k, &store.key("a1b2c3d4").await.unwrap().unwrap());
    assert_eq!(store.key_by_alias("search-prod").await.unwrap(), None);

    let missing = key("missing");
    assert!(matches!(
        store.update_key(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.key("missing").await.unwrap(), None);

    assert!(store.delete_key("a1b2c3d4").await.unwrap());
    assert!(!store.delete_key("a1b2c3d4").await.unwrap());
    assert_eq!(store.key("a1b2c3d4").await.unwrap(), None);
    // The alias of a deleted key is free again.
    let mut again = key("e5f6");
    again.key_alias = Some("search-prod-2".into());
    store.insert_key(&again).await.unwrap();
}

async fn key_alias_and_token_conflicts(store: &dyn Store) {
    let mut first = key("token-1");
    first.key_alias = Some("shared".into());
    store.insert_key(&first).await.unwrap();

    let mut same_alias = key("token-2");
    same_alias.key_alias = Some("shared".into());
    match store.insert_key(&same_alias).await {
        Err(StoreError::Conflict(message)) => assert!(message.contains("shared"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.key("token-2").await.unwrap(), None);

    let mut same_token = key("token-1");
    same_token.key_alias = Some("other".into());
    assert!(matches!(
        store.insert_key(&same_token).await,
        Err(StoreError::Conflict(_))
    ));

    // Keys without an alias never conflict with each other.
    store.insert_key(&key("token-3")).await.unwrap();
    store.insert_key(&key("token-4")).await.unwrap();

    // Renaming a key to a taken alias is a conflict too, and changes nothing.
    let mut rename = key("token-3");
    rename.key_alias = Some("shared".into());
    assert!(matches!(
        store.update_key(&rename).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.key("token-3").await.unwrap().unwrap().key_alias, None);
}

async fn list_keys_filters_pages_and_counts(store: &dyn Store) {
    for i in 0..7 {
        let mut k = key(&format!("tok-{i}"));
        k.created_at = 1_700_000_000_000 + i;
        k.team_id = Some(if i % 2 == 0 { "even" } else { "odd" }.into());
        k.user_id = (i < 3).then(|| "alice".to_owned());
        k.key_alias = Some(format!("alias-{i}"));
        store.insert_key(&k).await.unwrap();
    }
    let all = KeyFilter::default();
    let tokens = |keys: &[KeyRecord]| keys.iter().map(|k| k.token.clone()).collect::<Vec<_>>();

    let (first, total) = store.list_keys(&all, page(1, 3)).await.unwrap();
    assert_eq!(total, 7);
    assert_eq!(tokens(&first), ["tok-6", "tok-5", "tok-4"], "newest first");
    let (third, total) = store.list_keys(&all, page(3, 3)).await.unwrap();
    assert_eq!((tokens(&third), total), (vec!["tok-0".to_owned()], 7));
    let (beyond, total) = store.list_keys(&all, page(4, 3)).await.unwrap();
    assert_eq!((beyond.len(), total), (0, 7));

    let even = KeyFilter {
        team_id: Some("even".into()),
        ..KeyFilter::default()
    };
    let (keys, total) = store.list_keys(&even, page(1, 2)).await.unwrap();
    assert_eq!(
        (tokens(&keys), total),
        (vec!["tok-6".into(), "tok-4".into()], 4)
    );

    let alice_odd = KeyFilter {
        team_id: Some("odd".into()),
        user_id: Some("alice".into()),
        key_alias: None,
    };
    let (keys, total) = store.list_keys(&alice_odd, page(1, 10)).await.unwrap();
    assert_eq!((tokens(&keys), total), (vec!["tok-1".into()], 1));

    let by_alias = KeyFilter {
        key_alias: Some("alias-5".into()),
        ..KeyFilter::default()
    };
    let (keys, total) = store.list_keys(&by_alias, page(1, 10)).await.unwrap();
    assert_eq!((tokens(&keys), total), (vec!["tok-5".into()], 1));

    let nobody = KeyFilter {
        user_id: Some("nobody".into()),
        ..KeyFilter::default()
    };
    assert_eq!(
        store.list_keys(&nobody, page(1, 10)).await.unwrap(),
        (vec![], 0)
    );
}

async fn teams_users_and_end_users_round_trip(store: &dyn Store) {
    // Teams: put inserts, put again replaces, delete removes.
    let mut t = team("t1");
    store.put_team(&t).await.unwrap();
    let got = store.team("t1").await.unwrap().unwrap();
    assert_eq!(stored(&t, &got, |e, a| e.updated_at = a.updated_at), got);
    t.members.pop();
    t.blocked = true;
    t.team_alias = None;
    store.put_team(&t).await.unwrap();
    let got = store.team("t1").await.unwrap().unwrap();
    assert_eq!(stored(&t, &got, |e, a| e.updated_at = a.updated_at), got);
    let mut t0 = team("t0");
    t0.created_at += 1;
    store.put_team(&t0).await.unwrap();
    store.put_team(&team("t2")).await.unwrap();
    let teams = store.list_teams().await.unwrap();
    let ids: Vec<_> = teams.iter().map(|t| t.team_id.as_str()).collect();
    assert_eq!(ids, ["t1", "t2", "t0"], "oldest first, equal times by id");
    assert!(store.delete_team("t1").await.unwrap());
    assert!(!store.delete_team("t1").await.unwrap());
    assert_eq!(store.team("t1").await.unwrap(), None);
    let teams = store.list_teams().await.unwrap();
    let ids: Vec<_> = teams.iter().map(|t| t.team_id.as_str()).collect();
    assert_eq!(ids, ["t2", "t0"]);

    // Users, paged oldest first (as the memory store).
    for (i, id) in ["u1", "u2", "u3"].into_iter().enumerate() {
        let mut u = user(id);
        u.created_at += i as i64;
        store.put_user(&u).await.unwrap();
    }
    let mut u2 = user("u2");
    u2.created_at += 1;
    u2.user_role = "proxy_admin".into();
    u2.teams.push("t2".into());
    store.put_user(&u2).await.unwrap();
    let got = store.user("u2").await.unwrap().unwrap();
    assert_eq!(stored(&u2, &got, |e, a| e.updated_at = a.updated_at), got);
    let ids = |users: &[UserRecord]| users.iter().map(|u| u.user_id.clone()).collect::<Vec<_>>();
    let (users, total) = store.list_users(page(1, 2)).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(ids(&users), ["u1", "u2"], "oldest first");
    let (users, _) = store.list_users(page(2, 2)).await.unwrap();
    assert_eq!(ids(&users), ["u3"]);
    assert!(store.delete_user("u1").await.unwrap());
    assert!(!store.delete_user("u1").await.unwrap());
    assert_eq!(store.user("u1").await.unwrap(), None);
    assert_eq!(store.list_users(page(1, 10)).await.unwrap().1, 2);

    // End users.
    let mut e = end_user("customer-1");
    store.put_end_user(&e).await.unwrap();
    e.blocked = false;
    e.rpm_limit = Some(u64::MAX);
    store.put_end_user(&e).await.unwrap();
    let got = store.end_user("customer-1").await.unwrap().unwrap();
    // Limits past i64::MAX are stored as i64::MAX: as unlimited as the exact value.
    e.rpm_limit = Some(i64::MAX as u64);
    assert_eq!(stored(&e, &got, |e, a| e.updated_at = a.updated_at), got);
    assert_eq!(store.list_end_users().await.unwrap(), vec![got]);
    assert!(store.delete_end_user("customer-1").await.unwrap());
    assert!(!store.delete_end_user("customer-1").await.unwrap());
    assert_eq!(store.end_user("customer-1").await.unwrap(), None);
    assert!(store.list_end_users().await.unwrap().is_empty());
}

async fn load_all_returns_everything(store: &dyn Store) {
    assert_eq!(store.load_all().await.unwrap(), Default::default());
    for i in 0..3 {
        store.insert_key(&key(&format!("k{i}"))).await.unwrap();
    }
    store.put_team(&team("t1")).await.unwrap();
    store.put_user(&user("u1")).await.unwrap();
    store.put_user(&user("u2")).await.unwrap();
    store.put_end_user(&end_user("e1")).await.unwrap();
    store.delete_key("k1").await.unwrap();

    let all = store.load_all().await.unwrap();
    let mut keys: Vec<_> = all.keys.iter().map(|k| k.token.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["k0", "k2"]);
    assert_eq!(all.teams.len(), 1);
    assert_eq!(all.users.len(), 2);
    assert_eq!(all.end_users.len(), 1);
    same_key(
        &key("k0"),
        all.keys.iter().find(|k| k.token == "k0").unwrap(),
    );
}

/// Sleeps until the store's clock has moved past `time`, so the next write is stamped later.
async fn after(time: i64) {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    while now() <= time + 1 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn changes_since_reports_writes_and_deletions_after_a_time(store: &dyn Store) {
    store.insert_key(&key("old-key")).await.unwrap();
    store.insert_key(&key("doomed")).await.unwrap();
    store.put_team(&team("old-team")).await.unwrap();
    store.put_user(&user("doomed-user")).await.unwrap();
    let before = store.changes_since(0).await.unwrap();
    assert_eq!(before.written.keys.len(), 2);
    assert_eq!(before.written.teams.len(), 1);
    assert!(before.deleted_keys.is_empty());
    let mark = before.latest;
    assert!(mark > 1_600_000_000_000, "latest is a time: {mark}");

    after(mark).await;
    let mut k = key("old-key");
    k.blocked = true;
    store.update_key(&k).await.unwrap();
    store.insert_key(&key("new-key")).await.unwrap();
    store.put_end_user(&end_user("new-customer")).await.unwrap();
    assert!(store.delete_key("doomed").await.unwrap());
    assert!(store.delete_user("doomed-user").await.unwrap());
    store.put_team(&team("gone-team")).await.unwrap();
    assert!(store.delete_team("gone-team").await.unwrap());

    let changes = store.changes_since(mark + 1).await.unwrap();
    let mut written: Vec<_> = changes
        .written
        .keys
        .iter()
        .map(|k| k.token.as_str())
        .collect();
    written.sort();
    assert_eq!(
        written,
        ["new-key", "old-key"],
        "writes before the mark are left out"
    );
    assert!(changes
        .written
        .keys
        .iter()
        .any(|k| k.token == "old-key" && k.blocked));
    assert!(
        changes.written.teams.is_empty(),
        "old-team was written before the mark"
    );
    assert!(changes.written.users.is_empty());
    assert_eq!(changes.written.end_users.len(), 1);
    assert_eq!(changes.deleted_keys, ["doomed"]);
    assert_eq!(changes.deleted_users, ["doomed-user"]);
    assert_eq!(changes.deleted_teams, ["gone-team"]);
    assert!(changes.deleted_end_users.is_empty());
    assert!(changes.latest > mark);

    // Nothing after the latest change: an empty answer that keeps the window where it was.
    let quiet = store.changes_since(changes.latest + 1).await.unwrap();
    assert_eq!(quiet.written, Default::default());
    assert!(quiet.deleted_keys.is_empty() && quiet.deleted_teams.is_empty());
    assert_eq!(quiet.latest, changes.latest + 1);

    // Deleting then re-creating an id reports the write and no longer the deletion.
    after(changes.latest).await;
    store.insert_key(&key("doomed")).await.unwrap();
    let revived = store.changes_since(changes.latest + 1).await.unwrap();
    assert_eq!(revived.written.keys.len(), 1);
    assert!(revived.deleted_keys.is_empty());
    let since_mark = store.changes_since(mark + 1).await.unwrap();
    assert!(!since_mark.deleted_keys.contains(&"doomed".to_owned()));
}

async fn json_fields_round_trip_exactly(store: &dyn Store) {
    let mut k = key("json");
    k.metadata = obj(json!({
        "nested": {"list": [1, -2, 3.5, 1e-7, null, true, {"deep": ["x", {"y": []}]}]},
        "big": u64::MAX,
        "negative": i64::MIN,
        "float": 0.1,
        "empty_object": {},
        "empty_string": "",
        "z_last": 1,
        "a_first": 2
    }));
    k.extra = obj(json!({
        "aliases": {"fast": "gpt-4o-mini"},
        "config": {"temperature": 0.2},
        "permissions": {"pii_masking": false},
        "max_budget": 100.25,
        "budget_duration": "30d",
        "soft_budget": null
    }));
    k.model_rpm_limit = BTreeMap::from([("a".into(), 0), ("b".into(), i64::MAX as u64)]);
    k.tags = vec![];
    k.models = vec![];
    store.insert_key(&k).await.unwrap();
    same_key(&k, &store.key("json").await.unwrap().unwrap());

    let mut t = team("json-team");
    t.metadata = k.metadata.clone();
    t.extra = k.extra.clone();
    store.put_team(&t).await.unwrap();
    let got = store.team("json-team").await.unwrap().unwrap();
    assert_eq!(stored(&t, &got, |e, a| e.updated_at = a.updated_at), got);
}

async fn hostile_strings_round_trip(store: &dyn Store) {
    let hostile = [
        "'; DROP TABLE switchyard_keys; --",
        "\"double\" and 'single' and `back` quotes",
        "back\\slash \\\\ and \\u0041",
        "unicode: 日本語 ünïcödé עברית 🦀👩‍👩‍👧 \u{200b}zero-width",
        "percent % and underscore _ and $1 and ?1",
        "newline\nand\ttab\r\n",
    ];
    for (i, text) in hostile.iter().enumerate() {
        let mut k = key(&format!("{text}-{i}"));
        k.key_alias = Some(text.to_string());
        k.team_id = Some(text.to_string());
        k.metadata = obj(json!({ "list": [text] }));
        k.metadata.insert(text.to_string(), json!(text));
        k.tags = vec![text.to_string()];
        store.insert_key(&k).await.unwrap();
        same_key(&k, &store.key(&k.token).await.unwrap().unwrap());
        same_key(&k, &store.key_by_alias(text).await.unwrap().unwrap());
        let filter = KeyFilter {
            team_id: Some(text.to_string()),
            ..KeyFilter::default()
        };
        assert_eq!(store.list_keys(&filter, page(1, 10)).await.unwrap().1, 1);
    }
    // A wildcard in a filter is a literal, not a pattern.
    let filter = KeyFilter {
        team_id: Some("%".into()),
        ..KeyFilter::default()
    };
    assert_eq!(store.list_keys(&filter, page(1, 10)).await.unwrap().1, 0);

    // 100 KB of metadata, in one string and in many keys.
    let mut big = key("big");
    big.metadata = obj(json!({"blob": "é".repeat(50 * 1024)}));
    for i in 0..2_000 {
        big.metadata
            .insert(format!("key-{i}"), json!({"i": i, "s": "x".repeat(20)}));
    }
    store.insert_key(&big).await.unwrap();
    same_key(&big, &store.key("big").await.unwrap().unwrap());

    // NUL: SQLite keeps it; PostgreSQL refuses it in text and JSONB, and the write fails whole
    // (the management API rejects NUL before the store, see the store's docs).
    let mut nul = key("nul");
    nul.metadata = obj(json!({"a\u{0}b": "c\u{0}d"}));
    match (store.kind(), store.insert_key(&nul).await) {
        ("sqlite", Ok(())) => same_key(&nul, &store.key("nul").await.unwrap().unwrap()),
        ("postgresql", Err(StoreError::Unavailable(_))) => {
            assert_eq!(store.key("nul").await.unwrap(), None)
        }
        (kind, other) => panic!("{kind}: unexpected {other:?}"),
    }

    let mut u = user("ユーザー'\"");
    u.user_email = Some("o'brien+tag@例え.jp".into());
    store.put_user(&u).await.unwrap();
    let got = store.user("ユーザー'\"").await.unwrap().unwrap();
    assert_eq!(stored(&u, &got, |e, a| e.updated_at = a.updated_at), got);
}

async fn the_store_stamps_updated_at(store: &dyn Store) {
    // The caller's updated_at (0, or a clock far off) is replaced by the store's clock, so
    // changes_since sees every write.
    let mut k = key("stamped");
    k.updated_at = 42;
    store.insert_key(&k).await.unwrap();
    let first = store.key("stamped").await.unwrap().unwrap().updated_at;
    assert!(first > 1_600_000_000_000, "{first}");
    after(first).await;
    store.update_key(&k).await.unwrap();
    let second = store.key("stamped").await.unwrap().unwrap();
    assert!(second.updated_at > first);
    assert_eq!(
        second.created_at, k.created_at,
        "created_at is kept as given"
    );
}

// ------------------------------------------------------------------ backend-specific

#[tokio::test]
async fn sqlite_reopens_with_its_data_and_migrates_once() {
    let dir = TempDir::new();
    let store = SqliteStore::open(&dir.db()).await.unwrap();
    let mut k = key("persisted");
    k.key_alias = Some("kept".into());
    store.insert_key(&k).await.unwrap();
    store.put_team(&team("t1")).await.unwrap();
    store.close().await;

    // Opening again finds the data and applies no migration twice.
    let store = SqliteStore::open(&dir.db()).await.unwrap();
    same_key(&k, &store.key_by_alias("kept").await.unwrap().unwrap());
    assert!(store.team("t1").await.unwrap().is_some());
    store.close().await;
    let store = SqliteStore::open(&dir.db()).await.unwrap();
    store.close().await;

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.db().display()))
        .await
        .unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM switchyard_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(applied, [(1, true), (2, true), (3, true), (4, true)]);
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    // No table outside our prefix (SQLite's own aside).
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        tables.iter().all(|(name,)| name.starts_with("switchyard_")),
        "{tables:?}"
    );
    pool.close().await;
}

#[tokio::test]
async fn sqlite_open_names_a_path_it_cannot_use() {
    let dir = TempDir::new();
    let path = dir.0.join("no-such-dir").join("switchyard.db");
    match SqliteStore::open(&path).await {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("no-such-dir"), "{message}")
        }
        other => panic!("expected Unavailable, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn postgres_reconnects_with_its_data_and_migrates_once() {
    let schema = PgSchema::new().await;
    let store = schema.store().await;
    store.insert_key(&key("persisted")).await.unwrap();
    store.close().await;
    let store = schema.store().await;
    assert!(store.key("persisted").await.unwrap().is_some());
    store.close().await;

    let applied: Vec<(i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version, success FROM {}.switchyard_migrations ORDER BY version",
        schema.name
    )))
    .fetch_all(&schema.admin)
    .await
    .unwrap();
    assert_eq!(applied, [(1, true), (2, true), (3, true), (4, true)]);
    // Everything went into the schema of the URL's search_path, nothing into public.
    let (outside,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_name LIKE 'switchyard%' AND table_schema = 'public'",
    )
    .fetch_one(&schema.admin)
    .await
    .unwrap();
    assert_eq!(outside, 0);
}

#[tokio::test]
async fn postgres_stores_from_two_instances_see_each_others_changes() {
    let schema = PgSchema::new().await;
    let (one, two) = tokio::join!(schema.store(), schema.store());
    one.insert_key(&key("shared")).await.unwrap();
    let seen = two.changes_since(0).await.unwrap();
    assert_eq!(seen.written.keys.len(), 1);
    assert!(two.delete_key("shared").await.unwrap());
    let gone = one.changes_since(seen.latest).await.unwrap();
    assert_eq!(gone.deleted_keys, ["shared"]);
    one.close().await;
    two.close().await;
}

#[tokio::test]
async fn postgres_failures_are_unavailable_without_the_password() {
    let password = "hunter2-Sup3r%2Fsecret";
    let decoded = "hunter2-Sup3r/secret";
    for url in [
        // Nothing listens on port 1.
        format!("postgresql://postgres:{password}@127.0.0.1:1/test"),
        format!("postgres://127.0.0.1:1/test?user=postgres&password={password}"),
        // Not a URL sqlx can read.
        format!("postgresql://postgres:{password}@127.0.0.1:notaport/test"),
    ] {
        let started = std::time::Instant::now();
        match PostgresStore::connect(&url).await {
            Err(StoreError::Unavailable(message)) => {
                assert!(!message.contains(password), "{message}");
                assert!(!message.contains(decoded), "{message}");
                assert!(!message.contains("hunter2"), "{message}");
                assert!(message.contains("127.0.0.1"), "names where: {message}");
            }
            other => panic!("expected Unavailable, got {:?}", other.map(|_| ())),
        }
        assert!(started.elapsed() < Duration::from_secs(15), "fails fast");
    }
}

#[tokio::test]
async fn open_picks_the_backend_from_the_config() {
    use switchyard::config::{Database, Secret};
    let dir = TempDir::new();
    let store = switchyard::store::open(&Database::Sqlite(dir.db()))
        .await
        .unwrap();
    assert_eq!(store.kind(), "sqlite");
    store.ping().await.unwrap();
    let schema = PgSchema::new().await;
    let store = switchyard::store::open(&Database::Postgres(Secret::new(schema.url())))
        .await
        .unwrap();
    assert_eq!(store.kind(), "postgresql");
    store.ping().await.unwrap();
}
