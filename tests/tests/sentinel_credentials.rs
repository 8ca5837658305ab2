//! The sentinels' own credentials as `Settings` fields
//! (`sentinel_username`/`sentinel_password`), not URL query parameters:
//! against a Sentinel service whose sentinels (only) have a password.

use statehouse::{ErrorKind, Settings, Statehouse};
use statehouse_tests::harness::SentinelSet;

const SENTINEL_PASSWORD: &str = "s3ntinel&pw#1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_credentials_from_settings_reach_the_sentinels_and_never_show() {
    let set = tokio::task::spawn_blocking(|| {
        SentinelSet::builder()
            .sentinel_password(SENTINEL_PASSWORD)
            .start()
    })
    .await
    .unwrap();
    // The URL without `?sentinel_password=…`: the sentinels refuse it.
    let url = set.url();
    let bare = url
        .split_once('?')
        .map_or(url.as_str(), |(bare, _)| bare)
        .to_owned();
    assert_ne!(bare, url, "the harness puts the sentinels' password in the URL");
    let refused = Statehouse::with_settings(Settings::new(bare.clone()))
        .await
        .unwrap_err();
    assert_ne!(refused.kind(), ErrorKind::InvalidInput, "{refused}");

    let mut settings = Settings::new(bare);
    settings.sentinel_password = Some(SENTINEL_PASSWORD.to_owned());
    let shown = format!("{settings:?} {settings}");
    assert!(!shown.contains("s3ntinel"), "{shown}");
    let state = Statehouse::with_settings(settings).await.unwrap();
    state.documents().set("k", &1_u32).await.unwrap();
    assert_eq!(state.documents().get::<u32>("k").await.unwrap(), Some(1));
    set.stop();
}
