//! [`ResultCache`]: results and progress are stored, replaced, read back and expire.

use super::unique;
use crate::ResultCache;
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// The cases of this suite, for [`contract_tests!`](crate::contract_tests) and [`all`].
#[doc(hidden)]
#[macro_export]
macro_rules! __result_cases {
    ($then:ident! $ctx:tt) => {
        $crate::$then! { $ctx results result_cache [
            a_result_is_kept_replaced_and_removed,
            results_and_progress_expire,
            progress_is_kept_per_job,
        ] }
    };
}

/// Every case at once.
pub async fn all(results: &dyn ResultCache) {
    crate::__result_cases!(__join_cases!(results));
}

const HOUR: Duration = Duration::from_secs(3600);

/// A result reads back byte for byte (any bytes), a second put replaces it, remove drops it;
/// an unknown key has none.
pub async fn a_result_is_kept_replaced_and_removed(results: &dyn ResultCache) {
    let key = unique("hash-");
    assert_eq!(results.result(&key).await.expect("result"), None);
    let bytes: Vec<u8> = (0..=255).collect();
    results.put_result(&key, &bytes, HOUR).await.expect("put");
    assert_eq!(results.result(&key).await.expect("result"), Some(bytes));
    results
        .put_result(&key, b"second", HOUR)
        .await
        .expect("put");
    assert_eq!(
        results.result(&key).await.expect("result"),
        Some(b"second".to_vec())
    );
    let other = unique("hash-");
    assert_eq!(results.result(&other).await.expect("result"), None);
    results.remove_result(&key).await.expect("remove");
    assert_eq!(results.result(&key).await.expect("result"), None);
    results.remove_result(&key).await.expect("removing nothing");
}

/// Both kinds of entry are gone once their TTL has passed.
pub async fn results_and_progress_expire(results: &dyn ResultCache) {
    let key = unique("hash-");
    let job = Uuid::new_v4();
    let short = Duration::from_millis(200);
    results
        .put_result(&key, b"soon gone", short)
        .await
        .expect("put");
    results
        .put_progress(job, &json!({"status": "running"}), short)
        .await
        .expect("put_progress");
    super::wait_until("the entries expire", Duration::from_secs(10), || async {
        results.result(&key).await.expect("result").is_none()
            && results.progress(job).await.expect("progress").is_none()
    })
    .await;
}

/// Progress is JSON per job id; a later write replaces it.
pub async fn progress_is_kept_per_job(results: &dyn ResultCache) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let running = json!({"status": "running", "progress": 0.5, "partial_results": [[1, "x"]]});
    results.put_progress(a, &running, HOUR).await.expect("put");
    assert_eq!(results.progress(a).await.expect("progress"), Some(running));
    assert_eq!(results.progress(b).await.expect("progress"), None);
    let done = json!({"status": "completed", "progress": 1.0});
    results.put_progress(a, &done, HOUR).await.expect("put");
    assert_eq!(results.progress(a).await.expect("progress"), Some(done));
}
