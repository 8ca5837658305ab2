//! The harness's checks of its own internals
//! (`statehouse_tests::harness::self_checks`, beside the code they check).

use statehouse_tests::harness::self_checks as checks;

#[test]
fn a_taken_port_is_reported_for_retry_and_everything_is_cleaned_up() {
    checks::a_taken_port_is_reported_for_retry_and_everything_is_cleaned_up();
}

#[test]
fn config_quotes_passwords_and_names_the_service() {
    checks::config_quotes_passwords_and_names_the_service();
}

#[test]
fn cluster_nodes_lines_parse() {
    checks::cluster_nodes_lines_parse();
}

#[test]
fn redis_cli_is_found_next_to_redis_server_before_path() {
    checks::redis_cli_is_found_next_to_redis_server_before_path();
}

#[test]
fn a_missing_redis_cli_says_how_to_install_it() {
    checks::a_missing_redis_cli_says_how_to_install_it();
}
