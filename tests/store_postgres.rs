//! The PostgreSQL store against a real server (`tests/support/postgres.rs`: a throwaway
//! cluster, PostgreSQL server binaries required): the conformance suite
//! (`tests/store_cases/`), each case on a fresh database of the shared cluster, and what only
//! PostgreSQL has: replicas migrating at once, a newer schema refused, an outage and the
//! recovery after it, statement and pool timeouts, TLS verify-full, and TLS required for a
//! remote server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod store_cases;
mod support;
use payhsm::card::Domain;
use payhsm::store::postgres::{open, PgTls, PostgresOptions};
use payhsm::store::prelude::*;
use payhsm::store::StoreError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store_cases::backends::{options, PostgresFixture};
use store_cases::{assert_chain, event, tok, Fixture};
use support::postgres::{fresh_database, PgCluster};

store_cases::conformance!(PostgresFixture::new();
    a_challenge_consumed_from_two_replicas_at_once_is_consumed_once,
    a_challenge_is_consumed_once_and_then_reported_used,
    a_changed_token_format_keeps_the_tokens_derived_before_findable,
    a_credential_id_enrols_once_and_a_duplicate_writes_nothing,
    a_data_key_version_is_retired_and_destroyed_only_once_no_record_uses_it,
    a_deleted_derived_token_is_not_reused_and_its_successor_is_found,
    a_derived_token_is_found_by_its_own_row_and_kept_out_of_the_index,
    a_device_is_not_bound_to_a_token_suspended_or_deleted_after_the_services_check,
    a_device_is_revoked_once_with_its_reason_and_its_audit_record,
    a_device_keeps_the_browser_bound_key_and_android_boot_it_enrolled_with,
    a_second_distinct_custodian_within_the_window_grants_a_change,
    a_token_read_after_an_acknowledged_change_sees_the_change,
    a_token_written_on_one_replica_is_read_and_detokenized_on_the_other,
    an_authorization_is_read_back_as_committed_with_its_challenges_audience,
    an_expired_challenge_is_refused_and_stays_unused,
    audit_log_rows_cannot_be_updated_or_deleted,
    chain_continues_after_close_and_reopen,
    concurrent_counter_updates_from_the_same_value_let_one_through,
    concurrent_tokenizations_all_commit_with_a_gapless_signed_chain,
    data_keys_round_trip_with_their_audit_record,
    detokenize_is_refused_when_audit_write_fails,
    detokenize_outcomes_are_active_suspended_and_not_found_each_audited,
    devices_are_listed_by_user_and_by_token_oldest_first,
    failed_jobs_in_a_batch_leave_no_hole_or_fork,
    keys_changed_when_the_ring_misses_a_live_version_or_seals_under_a_non_active_one,
    lifecycle_transitions_and_delete_wipes_the_sealed_pan,
    of_concurrent_revocations_of_one_device_exactly_one_commits,
    of_twenty_concurrent_consumers_exactly_one_wins,
    replicas_append_to_one_gapless_audit_chain,
    same_pan_converges_within_a_domain_and_differs_across_domains,
    taken_token_writes_nothing_not_even_audit,
    the_kek_check_value_is_recorded_once_and_returned_after,
    the_latest_audit_record_is_the_head_of_the_chain,
    the_sign_count_is_a_compare_and_set,
    two_replicas_tokenizing_the_same_pans_at_once_get_one_token_each,
);

#[tokio::test(flavor = "multi_thread")]
async fn replicas_opening_an_empty_database_at_once_migrate_it_once() {
    let url = fresh_database();
    // The migration lock lets one migrate and the others find it done.
    let opening: Vec<_> = (0..4).map(|_| tokio::spawn(open(options(&url)))).collect();
    let mut stores = Vec::new();
    for o in opening {
        stores.push(o.await.unwrap().unwrap());
    }
    for (i, s) in stores.iter().enumerate() {
        s.record(event(&format!("replica_{i}"))).await.unwrap();
    }
    let records = stores[0].audit_records(0, 100).await.unwrap();
    assert_eq!(records.len(), 4);
    assert_chain(&records);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_newer_than_the_build_is_refused() {
    let f = PostgresFixture::new();
    let url = f.url();
    drop(f.open().await);
    f.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, 'later')")
        .await
        .unwrap();
    match open(options(url)).await {
        Err(StoreError::Corrupt(m)) => {
            assert!(payhsm::fault::Chain(&m).to_string().contains("99"), "{m}")
        }
        other => panic!("opened a newer schema: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_fail_fast_while_postgres_is_down_and_recover_when_it_is_back() {
    // Its own cluster: stopping the shared one would fail the other tests.
    let cluster = PgCluster::start();
    let url = cluster.create_database("outage");
    let s = open(options(&url)).await.unwrap();
    s.record(event("before")).await.unwrap();

    cluster.crash();
    let started = std::time::Instant::now();
    let err = s.record(event("during")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(s.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );

    cluster.start_again();
    // The writer reconnects by itself (after its backoff); readiness follows.
    let mut recovered = false;
    for _ in 0..100 {
        if s.ping().await.is_ok() && s.record(event("after")).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store did not recover");
    let records = s.audit_records(0, 100).await.unwrap();
    assert_eq!(records.first().unwrap().event.action, "before");
    assert_eq!(records.last().unwrap().event.action, "after");
    assert_chain(&records);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_statement_times_out_and_an_exhausted_pool_answers_at_once() {
    let url = fresh_database();
    let s = Arc::new(
        open(PostgresOptions {
            pool_size: 1,
            connect_timeout: Duration::from_millis(500),
            statement_timeout: Duration::from_secs(3),
            ..options(&url)
        })
        .await
        .unwrap(),
    );
    // Another session locks the table the read needs, and keeps it locked.
    let (locker, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let shop = Domain::parse("shop").unwrap();
    let blocked = {
        let (s, shop) = (s.clone(), shop.clone());
        tokio::spawn(async move { s.token(&tok(1), &shop).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The one pooled connection is taken: the next read waits no longer than the timeout.
    let started = std::time::Instant::now();
    let err = s.token(&tok(2), &shop).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if payhsm::fault::Chain(&m).to_string().contains("pool exhausted")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The blocked read ends with the statement timeout (57014), not never.
    let err = blocked.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if payhsm::fault::Chain(&m).to_string().contains("57014")),
        "{err:?}"
    );
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(s.token(&tok(1), &shop).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_checks_the_servers_chain_and_name() {
    // Its own cluster: TLS is a server setting, turned on with a restart.
    let cluster = PgCluster::start();
    let ca = cluster.enable_tls();
    let plain = cluster.create_database("tls");
    let verify_full = |url: &str, ca_file: PathBuf| PostgresOptions {
        tls: PgTls::VerifyFull { ca_file },
        ..options(url)
    };

    // The right CA and a name the certificate holds: the store works over TLS.
    let s = open(verify_full(&plain, ca.clone())).await.unwrap();
    s.record(event("over_tls")).await.unwrap();
    s.ping().await.unwrap();
    let over_tls = s.audit_records(0, 10).await.unwrap();
    assert_eq!(over_tls.len(), 1);
    drop(s);

    // Another CA: the chain does not verify.
    let other = tempfile::tempdir().unwrap();
    payhsm::pki::generate_dev_pki(other.path()).unwrap();
    let err = open(verify_full(&plain, other.path().join("ca.pem")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if payhsm::fault::Chain(&m).to_string().contains("invalid peer certificate")),
        "{err:?}"
    );

    // The right CA, but the host name is not the certificate's (the address is).
    let misnamed = format!(
        "host=db.example.com hostaddr=127.0.0.1 port={} user=payhsm dbname=tls",
        cluster.port()
    );
    let err = open(verify_full(&misnamed, ca.clone())).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if payhsm::fault::Chain(&m).to_string().contains("not valid for name")),
        "{err:?}"
    );

    // A CA file without a certificate is refused before any connection.
    let empty = other.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = open(verify_full(&plain, empty)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if payhsm::fault::Chain(&m).to_string().contains("no certificate")),
        "{err:?}"
    );
}

#[test]
fn tls_disable_is_refused_for_a_remote_host() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for url in [
        "postgres://payhsm@db.example.com:5432/vault",
        // A loopback name does not help when the address connected to is remote.
        "host=localhost hostaddr=192.0.2.7 user=payhsm dbname=vault",
    ] {
        let err = rt.block_on(open(options(url))).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if payhsm::fault::Chain(&m).to_string().contains("verify-full")),
            "{url}: {err:?}"
        );
    }
}
