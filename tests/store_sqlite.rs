//! The SQLite store against real database files: the conformance suite
//! (`tests/store_cases/`), and what only SQLite has: one writer per file, a read-only open
//! beside it, and refusal of a newer schema.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod store_cases;
mod support;
use payhsm::store::prelude::*;
use payhsm::store::sqlite::{open, open_read_only, SqliteOptions};
use payhsm::store::StoreError;
use store_cases::backends::SqliteFixture;
use store_cases::{all_audit, event, Fixture};

store_cases::conformance!(SqliteFixture::new();
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
async fn a_second_store_on_the_same_file_is_refused_while_the_first_is_open() {
    let f = SqliteFixture::new();
    let path = f.path();
    let first = f.open().await;
    let err = open(path, SqliteOptions::default()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if payhsm::fault::Chain(&m).to_string().contains("in use by another process")),
        "{err}"
    );
    first.record(event("still_writing")).await.unwrap();
    // A read-only open (audit export) works beside the writer, sees its writes, writes nothing.
    let ro = open_read_only(path).unwrap();
    assert_eq!(all_audit(&ro).await.len(), 1);
    let refused = ro.record(event("export")).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Unavailable(m) if payhsm::fault::Chain(&m).to_string().contains("read-only")),
        "{refused}"
    );
    first.record(event("after_export")).await.unwrap();
    assert_eq!(all_audit(&ro).await.len(), 2);
    drop(first);
    let second = f.open().await;
    second.record(event("startup")).await.unwrap();
    assert_eq!(all_audit(&*second).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn database_with_a_newer_schema_is_refused() {
    let f = SqliteFixture::new();
    drop(f.open().await);
    f.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'later')")
        .await
        .unwrap();
    assert!(matches!(
        open(f.path(), SqliteOptions::default()),
        Err(StoreError::Corrupt(_))
    ));
}
