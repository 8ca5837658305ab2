//! The contract suite: one list of behaviour tests that every backend (and
//! every stack of layers over it) must pass.
//!
//! Test bodies are plain `pub async fn name(backend: Backend)`; the
//! [`contract_suite!`](crate::contract_suite) macro lists them all once, and
//! each backend's test file applies it with its own runner, so the lists
//! cannot drift apart. A behaviour one backend has and another lacks fails
//! here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use statehouse::{Documents, RetryPolicy, TaskSpace, Tasks, Tenant};
use statehouse_ports::SyncedStore;
use statehouse_ports::{
    ChangeFeed, DocumentStore, FieldStore, Key, QueueStore, SubjectStore, TaskRepository, TriggerStore,
};

pub mod changes;
pub mod config;
pub mod documents;
pub mod durability;
pub mod hotkeys;
pub mod listing;
pub mod queues;
pub mod subjects;
pub mod synced;
pub mod tasks;
pub mod tenants;
pub mod triggers;

/// The runtime a test needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// A single-threaded runtime; on the memory backend time is paused, so
    /// [`Backend::elapse`] advances it instantly.
    Plain,
    /// A multi-threaded runtime with real time: for contention tests and for
    /// tests that block a worker (`block_in_place`) to interfere mid-update.
    Threaded,
}

/// A contract test's body, run by a backend's runner on a [`Backend`]. Its
/// future is boxed so that each runner is compiled once per test binary,
/// not once per test (as a generic runner was: two hundred copies of every
/// backend's set-up).
pub type Body = Box<dyn FnOnce(Backend) -> Pin<Box<dyn Future<Output = ()> + Send>>>;

/// `test` as a [`Body`].
pub fn body<Fut>(test: impl FnOnce(Backend) -> Fut + 'static) -> Body
where
    Fut: Future<Output = ()> + Send + 'static,
{
    Box::new(move |backend| Box::pin(test(backend)))
}

/// Puts a value of another Redis type (a hash) under a key.
pub type PlantHash = Arc<dyn Fn(Key) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Connects "another process" to a backend's store: new ports with
/// connections (or a handle) of their own, sharing nothing with the first
/// but the store itself (the Redis server, or the memory keyspace).
pub type OtherProcess =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = statehouse::Ports> + Send>> + Send + Sync>;

/// The ports of the same store (same connections, same namespace) with
/// writes acknowledged as a [`Durability`](statehouse_ports::Durability)
/// says, under the same layers.
pub type DurableView = Arc<dyn Fn(statehouse_ports::Durability) -> statehouse::Ports + Send + Sync>;

/// Raw access to Redis hashes (in a backend's namespace), below the ports:
/// what another process (a Python KRules service) writes and reads.
pub trait RawHashes: Send + Sync {
    /// `HSET key field value`.
    fn hset(&self, key: String, field: Vec<u8>, value: Vec<u8>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
    /// `HGET key field`.
    fn hget(&self, key: String, field: Vec<u8>) -> Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send>>;
    /// `ZADD key score member`.
    fn zadd(&self, key: String, member: String, score: f64) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// What a contract test gets: the ports of one backend, in a namespace of
/// its own, and a clock.
pub struct Backend {
    /// The backend's name, for messages (`memory`, `redis`, `memory+layers`…).
    pub name: String,
    /// The document port.
    pub documents: Arc<dyn DocumentStore>,
    /// The task port.
    pub tasks: Arc<dyn TaskRepository>,
    /// The subject port.
    pub subjects: Arc<dyn SubjectStore>,
    /// The tenant field port.
    pub tenants: Arc<dyn FieldStore>,
    /// The trigger port.
    pub triggers: Arc<dyn TriggerStore>,
    /// The queue port.
    pub queues: Arc<dyn QueueStore>,
    /// The change feed.
    pub changes: Arc<dyn ChangeFeed>,
    /// The synced-model port.
    pub synced: Arc<dyn SyncedStore>,
    paused_time: bool,
    plant_hash: PlantHash,
    raw_hashes: Arc<dyn RawHashes>,
    other_process: Option<OtherProcess>,
    /// How many replicas the store has, and its durable views.
    replicated: Option<(u32, DurableView)>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .field("documents", &self.documents)
            .field("paused_time", &self.paused_time)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// A fixture over `ports`. `paused_time` says that tokio time is paused in the test's
    /// runtime (memory backend, [`Flavor::Plain`]).
    pub fn new(
        name: impl Into<String>,
        ports: statehouse::Ports,
        paused_time: bool,
        plant_hash: PlantHash,
        raw_hashes: Arc<dyn RawHashes>,
    ) -> Self {
        Self {
            name: name.into(),
            documents: ports.documents,
            tasks: ports.tasks,
            subjects: ports.subjects,
            tenants: ports.tenants,
            triggers: ports.triggers,
            queues: ports.queues,
            changes: ports.changes,
            synced: ports.synced,
            paused_time,
            plant_hash,
            raw_hashes,
            other_process: None,
            replicated: None,
        }
    }

    /// The same fixture, whose store has `replicas` replicas and gives
    /// durable views of itself ([`durable`](Self::durable)).
    #[must_use]
    pub fn with_replicas(mut self, replicas: u32, view: DurableView) -> Self {
        self.replicated = Some((replicas, view));
        self
    }

    /// How many replicas the store has (0 for memory and a lone server).
    /// Panics if the runner did not say.
    pub fn replicas(&self) -> u32 {
        self.replicated
            .as_ref()
            .expect("the runner gives durable views")
            .0
    }

    /// The ports of this store with writes acknowledged as `durability`
    /// says. Panics if the runner gave no view.
    pub fn durable(&self, durability: statehouse_ports::Durability) -> statehouse::Ports {
        let (_, view) = self.replicated.as_ref().expect("the runner gives durable views");
        view(durability)
    }

    /// The same fixture, able to connect another process
    /// ([`other_process`](Self::other_process)).
    #[must_use]
    pub fn with_other_process(mut self, connect: OtherProcess) -> Self {
        self.other_process = Some(connect);
        self
    }

    /// The ports of another process on the same store (see
    /// [`OtherProcess`]). Panics if the runner gave none.
    pub async fn other_process(&self) -> statehouse::Ports {
        let connect = self
            .other_process
            .as_ref()
            .expect("the runner connects other processes");
        connect().await
    }

    /// The documents facade over this backend.
    pub fn docs(&self) -> Documents {
        Documents::new(self.documents.clone())
    }

    /// The documents facade with another update retry policy.
    pub fn docs_with(&self, policy: RetryPolicy) -> Documents {
        self.docs().with_retry_policy(policy)
    }

    /// The synced models over this backend, default retry policy.
    pub fn models(&self) -> statehouse::Models {
        statehouse::Models::new(self.synced.clone())
    }

    /// The tasks facade over this backend, in the default space.
    pub fn tasks(&self) -> Tasks {
        self.tasks_in(TaskSpace::default())
    }

    /// The tasks facade in `space`.
    pub fn tasks_in(&self, space: TaskSpace) -> Tasks {
        Tasks::new(self.tasks.clone(), space)
    }

    /// Tenant `id` over this backend, default retry policy.
    pub fn tenant(&self, id: &str) -> Tenant {
        Tenant::new(self.tenants.clone(), id, RetryPolicy::default()).expect("valid tenant id")
    }

    /// The triggers facade over this backend.
    pub fn trigger_facade(&self) -> statehouse::Triggers {
        statehouse::Triggers::new(self.triggers.clone())
    }

    /// The queues facade over this backend.
    pub fn queue_facade(&self) -> statehouse::Queues {
        statehouse::Queues::new(self.queues.clone())
    }

    /// Whether tokio time is paused (memory backend, [`Flavor::Plain`]).
    pub fn paused_time(&self) -> bool {
        self.paused_time
    }

    /// Lets `duration` pass: advances paused tokio time, or sleeps. Keep
    /// contract durations in milliseconds.
    pub async fn elapse(&self, duration: Duration) {
        if self.paused_time {
            tokio::time::advance(duration).await;
        } else {
            tokio::time::sleep(duration).await;
        }
    }

    /// Writes one raw hash field under `key` (in this backend's namespace),
    /// bypassing the ports: bad data, or another process's write.
    pub async fn hset_raw(&self, key: &str, field: &[u8], value: &[u8]) {
        self.raw_hashes
            .hset(key.to_owned(), field.to_vec(), value.to_vec())
            .await;
    }

    /// Reads one raw hash field under `key`, bypassing the ports.
    pub async fn hget_raw(&self, key: &str, field: &[u8]) -> Option<Vec<u8>> {
        self.raw_hashes.hget(key.to_owned(), field.to_vec()).await
    }

    /// Adds one raw sorted-set entry under `key`, bypassing the ports
    /// (another layout's index).
    pub async fn zadd_raw(&self, key: &str, member: &str, score: f64) {
        self.raw_hashes
            .zadd(key.to_owned(), member.to_owned(), score)
            .await;
    }

    /// Stores a hash under `key` (in this backend's namespace).
    pub async fn plant_hash(&self, key: &str) {
        (self.plant_hash)(Key::new(key).expect("valid key")).await;
    }
}

/// Applies the whole contract suite with `$runner`, a function
/// `fn(Flavor, impl FnOnce(Backend) -> impl Future<Output = ()>)` in the
/// calling module. Generates one `#[test]` per behaviour, grouped in a module
/// per capability family, e.g. `documents::mget_reports_failure_per_key`.
#[macro_export]
macro_rules! contract_suite {
    ($runner:ident) => {
        $crate::contract_suite!(@family $runner, documents, [
            round_trips_a_typed_value: Plain,
            missing_key_reads_as_none: Plain,
            null_and_missing_stay_distinct: Plain,
            undecodable_value_fails_naming_key_and_type: Plain,
            mget_reports_failure_per_key: Plain,
            mget_keeps_order_duplicates_and_large_batches: Plain,
            ttl_expires_the_key: Plain,
            set_without_ttl_clears_the_ttl: Plain,
            zero_ttl_is_invalid_input_and_writes_nothing: Plain,
            set_if_absent_and_if_present: Plain,
            delete_reports_whether_the_key_existed: Plain,
            lists_ten_thousand_keys_once_each: Plain,
            glob_patterns_match_like_redis: Plain,
            escaped_pattern_matches_only_the_literal: Plain,
            keys_with_glob_characters_are_used_verbatim: Plain,
            invalid_keys_are_rejected_before_any_io: Plain,
            large_and_unicode_values_round_trip: Plain,
            hash_under_a_key_is_wrong_type: Plain,
            ping_answers: Plain,
            update_creates_changes_keeps_and_deletes: Plain,
            update_keeps_the_ttl: Plain,
            update_closure_error_writes_nothing: Plain,
            update_of_undecodable_value_does_not_call_the_closure: Plain,
            update_of_a_value_of_another_shape_is_deserialization_naming_the_key: Plain,
            concurrent_updates_lose_nothing: Threaded,
            conflict_reruns_the_closure_exactly_twice: Threaded,
            increment_adds_keeps_the_ttl_and_starts_missing_keys_at_zero: Plain,
            increment_refuses_non_integers_overflow_and_other_types_writing_nothing: Plain,
            append_extends_an_array_keeps_its_text_and_ttl: Plain,
            append_refuses_non_arrays_and_other_types_writing_nothing: Plain,
            increments_and_appends_from_16_tasks_end_exact: Threaded,
            one_attempt_policy_reports_conflict: Threaded,
            rewriting_the_same_value_still_conflicts: Threaded,
        ]);
        $crate::contract_suite!(@family $runner, changes, [
            a_subscription_starts_with_a_resync: Plain,
            announced_writes_arrive_with_their_version: Plain,
            plain_writes_deletes_and_expiry_arrive: Plain,
            keys_and_patterns_see_only_what_they_watch: Plain,
            a_slow_subscriber_lags_without_holding_up_the_others: Plain,
            a_dropped_subscription_stops_and_others_go_on: Plain,
            a_ttl_change_alone_is_no_event: Plain,
            a_swap_on_a_match_writes_and_announces_in_one_step: Plain,
            a_swap_on_a_mismatch_answers_the_current_bytes_and_writes_nothing: Plain,
            a_swap_keeps_the_ttl: Plain,
            a_swap_of_a_key_of_another_type_is_wrong_type: Plain,
        ]);
        $crate::contract_suite!(@family $runner, config, [
            plain_mode_bumps_the_version_and_keeps_one_value: Plain,
            history_mode_keeps_a_bounded_history: Plain,
            update_if_is_a_compare_and_set: Plain,
            concurrent_writers_get_distinct_consecutive_versions: Threaded,
            a_remote_update_reaches_the_cache_and_the_watchers: Plain,
            bad_data_names_key_and_version_and_keeps_the_last_good_value: Plain,
            rapid_updates_end_with_every_watcher_on_the_last_value: Threaded,
            names_are_escaped_and_validated: Plain,
            a_stale_cache_costs_a_retry_never_a_wrong_version: Plain,
            sixteen_tasks_updating_one_entry_get_consecutive_versions_and_watchers_the_last: Threaded,
            combined_updates_in_history_mode_keep_every_value_in_version_order: Threaded,
            a_conflicting_update_if_fails_alone_among_combined_updates: Threaded,
            a_cancelled_update_takes_only_its_own_version: Threaded,
        ]);
        $crate::contract_suite!(@family $runner, subjects, [
            load_reads_both_kinds_and_keeps_null_apart_from_missing: Plain,
            the_wire_layout_is_krules_layout: Plain,
            store_writes_field_by_field_and_keeps_other_writers_properties: Plain,
            update_property_returns_old_and_new: Plain,
            concurrent_updates_of_one_property_lose_nothing: Threaded,
            conflict_reruns_the_closure_with_the_new_value: Threaded,
            invalid_json_fails_alone_naming_subject_and_property: Plain,
            fields_without_a_marker_are_ignored: Plain,
            a_subject_key_of_another_type_is_wrong_type: Plain,
            list_matches_names_under_the_prefix_taken_literally: Plain,
            handle_caches_stages_and_stores_in_one_batch: Plain,
            a_failed_store_keeps_every_staged_change: Plain,
            handles_on_many_tasks_count_to_exactly_4000: Threaded,
            callbacks_see_old_new_and_kind: Plain,
            handle_reports_a_bad_property_and_reads_the_rest: Plain,
            set_with_of_a_value_of_another_shape_names_subject_and_property: Plain,
            increment_property_adds_on_the_server_and_refuses_non_integers: Plain,
            handle_increment_is_one_server_step_and_tells_callbacks: Plain,
        ]);
        $crate::contract_suite!(@family $runner, hotkeys, [
            sixteen_tasks_updating_one_key_form_one_chain: Threaded,
            an_erroring_or_keeping_closure_affects_only_its_caller: Threaded,
            a_cancelled_caller_takes_only_its_own_closure: Threaded,
            a_leader_cancelled_during_its_write_changes_no_other_outcome: Threaded,
            sixteen_tasks_updating_one_property_form_one_chain: Threaded,
            sixteen_tasks_updating_one_tenant_field_form_one_chain: Threaded,
            sixteen_tasks_modifying_one_hash_model_form_one_chain: Threaded,
            sixteen_tasks_modifying_one_json_model_form_one_chain: Threaded,
            an_erroring_or_keeping_modify_affects_only_its_caller: Threaded,
            a_cancelled_modify_takes_only_its_own_change: Threaded,
            a_batch_of_model_writes_ends_as_one_after_another: Threaded,
            sixteen_tasks_changing_one_task_never_conflict: Threaded,
            a_refused_write_of_combined_task_changes_fails_every_caller: Threaded,
        ]);
        $crate::contract_suite!(@family $runner, tasks, [
            save_and_get_round_trip_a_record: Plain,
            status_changes_follow_the_lifecycle: Plain,
            unknown_task_is_not_found: Plain,
            listings_are_newest_first_and_paged: Plain,
            paging_through_same_millisecond_updates_loses_nothing: Plain,
            saving_under_another_user_moves_the_index_entries: Plain,
            delete_removes_the_record_and_its_index_entries: Plain,
            expired_tasks_vanish_from_listings_and_counts: Plain,
            writes_refresh_the_ttl_but_never_shorten_it: Plain,
            bad_record_fails_alone_in_its_page: Plain,
            log_cap_keeps_the_newest_entries: Plain,
            stale_index_entries_are_skipped: Plain,
            ids_with_separators_and_globs_never_collide: Plain,
            invalid_ids_are_rejected_before_any_io: Plain,
            a_key_of_another_type_fails_the_write_and_writes_nothing: Plain,
            concurrent_log_appends_lose_nothing: Threaded,
            status_change_racing_with_appends_loses_neither: Threaded,
            ties_in_one_millisecond_page_by_id_across_buckets: Plain,
            pages_cross_bucket_boundaries_without_gaps_or_repeats: Plain,
            a_task_written_by_another_client_in_the_documented_layout_is_read: Plain,
            paging_while_tasks_are_inserted_and_updated_repeats_none_and_keeps_the_rest: Threaded,
            legacy_tasks_move_into_their_buckets_keeping_order_and_ttl: Plain,
            the_migration_keeps_the_newer_copy_and_deletes_only_what_it_moved: Plain,
        ]);
        $crate::contract_suite!(@family $runner, synced, [
            an_absent_model_starts_from_default_and_writes_nothing: Plain,
            modify_writes_the_new_model_in_its_layout: Plain,
            the_type_name_is_the_rust_name_unless_overridden: Plain,
            a_rejected_change_names_key_and_reason_and_writes_nothing: Plain,
            a_change_may_not_move_the_model_to_another_id: Plain,
            two_handles_see_each_other_after_refresh: Plain,
            a_stored_model_keeps_its_layout_whatever_the_new_layout: Plain,
            set_writes_one_field_and_keeps_what_others_wrote: Plain,
            set_refuses_unknown_fields_and_values_the_field_does_not_take: Plain,
            ids_are_kept_verbatim_and_validated_before_any_io: Plain,
            delete_removes_the_model_and_resets_the_copy: Plain,
            modify_and_set_keep_the_ttl: Plain,
            a_key_of_another_type_is_wrong_type_and_stays: Plain,
            concurrent_modifies_from_many_handles_lose_nothing: Threaded,
            writers_of_different_fields_lose_nothing: Threaded,
            a_conflict_reruns_the_change_on_the_new_value: Threaded,
        ], {
            hash: Hash [
                python_written_fields_read_leniently_and_only_changed_ones_are_written: Plain,
                values_have_the_bytes_python_reads_back: Plain,
                a_bad_field_names_key_field_and_type_and_the_others_stay_readable: Plain,
                a_partial_hash_reads_missing_fields_from_the_defaults_and_the_next_write_stores_them: Plain,
            ],
            json: Json [
                a_python_json_dumps_document_loads_and_keeps_unknown_fields: Plain,
                a_model_declared_json_is_written_as_json: Plain,
                an_undecodable_document_is_deserialization_naming_the_key: Plain,
            ],
        });
        $crate::contract_suite!(@family $runner, tenants, [
            users_round_trip_typed_and_field_by_field: Plain,
            the_wire_layout_is_one_json_value_per_field: Plain,
            a_bad_field_fails_alone_naming_tenant_key_and_field: Plain,
            modify_field_of_a_value_of_another_shape_names_the_field: Plain,
            increment_is_integer_only_and_append_needs_an_array: Plain,
            find_returns_the_users_holding_a_value: Plain,
            handler_merge_keeps_unmentioned_fields_and_returns_the_merged_state: Plain,
            tables_delete_pk_across_tables_and_nothing_else: Plain,
            shared_states_list_delete_and_clear_only_their_user: Plain,
            ttl_default_override_and_refresh_per_operation: Plain,
            invalid_ids_are_rejected_before_any_io: Plain,
            a_key_of_another_type_is_wrong_type: Plain,
            isolation_holds_for_random_nasty_ids: Plain,
            tenants_named_star_colon_and_prefix_stay_apart: Plain,
            increments_from_16_tasks_end_exact: Threaded,
            writers_on_different_fields_lose_nothing: Threaded,
            the_current_shared_state_never_leaks_between_requests: Threaded,
        ]);
        $crate::contract_suite!(@family $runner, durability, [
            primary_only_acknowledges_as_before: Plain,
            as_many_replicas_as_the_store_has_acknowledge_every_family: Plain,
            more_replicas_than_the_store_has_apply_the_write_then_fail_not_durable: Plain,
            reads_never_wait_for_replicas: Plain,
            an_update_that_writes_nothing_waits_for_nothing: Plain,
        ]);
        $crate::contract_suite!(@family $runner, triggers, [
            a_trigger_is_not_delivered_before_it_is_due: Plain,
            setting_again_moves_the_deadline_instead_of_adding: Plain,
            acknowledged_triggers_never_fire_again: Plain,
            an_unacknowledged_claim_is_redelivered_after_the_lease: Plain,
            deliveries_count_redeliveries_and_restart_when_set_again: Plain,
            setting_again_voids_an_outstanding_claim: Plain,
            cancel_and_cancel_all_remove_triggers: Plain,
            tenants_never_see_each_others_triggers: Plain,
            invalid_names_are_rejected_before_any_io: Plain,
            triggers_due_while_no_listener_ran_are_delivered_when_one_starts: Plain,
            a_dead_listeners_claims_are_redelivered_after_the_lease: Plain,
            a_thousand_triggers_reach_four_listeners_exactly_once: Plain,
            a_thousand_triggers_reach_four_listeners_on_threads_exactly_once: Threaded,
            a_key_of_another_type_is_wrong_type_and_nothing_is_written: Plain,
            take_due_hands_a_due_tenant_to_one_taker_until_it_is_filed_again: Plain,
            a_full_claim_files_the_tenant_again_at_once_and_none_prunes_it: Plain,
            a_claim_that_missed_a_marked_set_looks_at_the_tenant_again_soon: Plain,
            a_mark_whose_set_never_wrote_is_adopted_after_a_minute: Plain,
            a_shard_of_another_type_fails_the_set_before_the_trigger_is_written: Plain,
            one_busy_tenant_does_not_starve_the_others: Plain,
            a_set_in_another_process_wakes_idle_listeners_at_once: Plain,
            ten_thousand_tenants_reach_four_listeners_in_two_processes_exactly_once: Plain,
            a_killed_listeners_claims_are_redelivered_after_the_lease: Plain,
            idle_listeners_take_only_a_few_times_per_second: Plain,
            a_round_claims_and_acks_its_tenants_together_and_the_index_reads_without_taking: Plain,
        ]);
        $crate::contract_suite!(@family $runner, listing, [
            every_family_yields_each_key_once: Plain,
            patterns_and_prefixes_bound_every_listing: Plain,
            keys_written_during_a_listing_never_hide_the_others: Plain,
            an_empty_listing_ends_at_once: Plain,
            a_listing_spans_pages_and_holds_one_page_at_a_time: Plain,
        ]);
        $crate::contract_suite!(@family $runner, queues, [
            enqueue_keeps_fifo_order_and_marks_the_tenant_pending: Plain,
            range_and_trim_read_and_drop_the_oldest: Plain,
            claimed_items_are_exclusive_and_acked_items_are_gone: Plain,
            a_crashed_workers_items_come_back_after_the_lease: Plain,
            lapsed_items_come_back_in_queue_order_past_a_digit_boundary: Plain,
            lapsed_items_of_different_leases_come_back_in_queue_order: Plain,
            remove_pending_drops_the_mark_and_enqueue_sets_it_again: Plain,
            payloads_round_trip_and_bad_names_are_rejected: Plain,
            eight_producers_four_consumers_each_item_exactly_once_in_order: Threaded,
            a_key_of_another_type_is_wrong_type_and_nothing_is_written: Plain,
        ]);
    };
    // A family whose tests run once per layout (`shared`, taking the
    // layout) beside each layout's own tests (in `$family::$part`).
    (@family $runner:ident, $family:ident, $shared:tt, {
        $($part:ident : $layout:ident [$($name:ident : $flavor:ident),* $(,)?]),* $(,)?
    }) => {
        mod $family {
            $(
                mod $part {
                    $crate::contract_suite!(@shared $runner, $family, $layout, $shared);
                    $(
                        #[test]
                        fn $name() {
                            super::super::$runner(
                                $crate::contract::Flavor::$flavor,
                                $crate::contract::body($crate::contract::$family::$part::$name),
                            );
                        }
                    )*
                }
            )*
        }
    };
    (@shared $runner:ident, $family:ident, $layout:ident, [$($name:ident : $flavor:ident),* $(,)?]) => {
        $(
            #[test]
            fn $name() {
                super::super::$runner($crate::contract::Flavor::$flavor, $crate::contract::body(|backend| {
                    $crate::contract::$family::$name(backend, statehouse::ModelLayout::$layout)
                }));
            }
        )*
    };
    (@family $runner:ident, $family:ident, [$($name:ident : $flavor:ident),* $(,)?]) => {
        mod $family {
            $(
                #[test]
                fn $name() {
                    super::$runner(
                        $crate::contract::Flavor::$flavor,
                        $crate::contract::body($crate::contract::$family::$name),
                    );
                }
            )*
        }
    };
}
