//! The load generator works against our server and every workload converges, at a tiny
//! size (a few peers, a few hundred updates). Nothing here is timed: performance is only
//! measured by `scripts/bench-compare.sh`.

use canvas_tests::TestServer;
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_and_converges_against_our_server() {
    let server = TestServer::start_with(|c| {
        c.rest_rate_limit = 100_000;
        c.ws_rate_limit = 10_000_000;
        c.idle_unload_secs = 1;
    })
    .await;
    let out = tempfile::tempdir().expect("temp dir");
    let results = out.path().join("ours.json");
    let pid = std::process::id().to_string();
    let addr = server.addr.to_string();
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_canvas-load"))
            .args([
                "run",
                "--target",
                "canvas",
                "--addr",
                &addr,
                "--server-pid",
                &pid,
            ])
            .args([
                "--workloads",
                "w2,w3,w4,w5,w6,w7",
                "--synthetic-edits",
                "300",
            ])
            .args(["--w2-window", "32"])
            .args([
                "--w3-peers",
                "3,5",
                "--w3-writers",
                "2",
                "--w3-rate",
                "100",
                "--w3-secs",
                "1",
            ])
            .args([
                "--w3-ramp-peers",
                "3",
                "--w3-ramp-rates",
                "100,200",
                "--w3-ramp-secs",
                "1",
            ])
            .args(["--w4-levels", "20,40", "--w4-settle-ms", "50"])
            .args(["--w5-warm", "2", "--w5-burst", "4", "--w5-cold-rounds", "1"])
            .args(["--w5-unload-wait-ms", "3000"])
            // W6 with a tiny text per writer, so that its deletions run too.
            .args(["--w6-peers", "4", "--w6-writers", "2", "--w6-rate", "100"])
            .args([
                "--w6-secs",
                "2",
                "--w6-window-secs",
                "1",
                "--w6-keep-chars",
                "5",
            ])
            .args(["--w7-rooms", "5", "--w7-members", "3", "--w7-rate", "5"])
            .args(["--w7-secs", "1"])
            .arg("--out")
            .arg(&results)
            .output(),
    )
    .await
    .expect("the load generator finishes")
    .expect("the load generator runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "canvas-load failed:\n{stderr}");

    let r: Value = serde_json::from_slice(&std::fs::read(&results).expect("results written"))
        .expect("results are JSON");
    assert_eq!(r["errors"], serde_json::json!([]), "{stderr}");
    assert_eq!(r["w2"]["updates"], 300);
    assert_eq!(r["w2"]["converged"], true);
    assert!(
        r["w2"]["acked_per_sec"].as_f64().is_some(),
        "ours acknowledges: {r}"
    );
    let fixed = r["w3"]["fixed"].as_array().expect("fan-out points");
    assert_eq!(fixed.len(), 2);
    for point in fixed {
        assert_eq!(
            point["delivered"], point["expected"],
            "every update reached every peer: {point}"
        );
    }
    assert_eq!(r["w3"]["converged"], true);
    assert_eq!(r["w4"]["levels"][1]["connections"], 40);
    assert_eq!(r["w4"]["levels"][1]["rooms"], 4);
    assert_eq!(r["w4"]["converged"], true);
    assert_eq!(r["w5"]["converged"], true);
    assert!(
        r["w5"]["storage_p50_ms"].as_f64().is_some(),
        "joined from storage: {r}"
    );
    let w6 = &r["w6"];
    assert_eq!(w6["windows"].as_array().map(Vec::len), Some(2), "{w6}");
    assert_eq!(w6["errors"], 0, "{w6}");
    assert_eq!(w6["converged"], true, "{w6}");
    assert!(w6["rss_drift_pct"].as_f64().is_some(), "{w6}");
    let w7 = &r["w7"];
    assert_eq!(w7["sent"], 5 * 3 * 5, "{w7}");
    assert_eq!(w7["delivered"], w7["expected"], "{w7}");
    assert_eq!(w7["converged"], true, "{w7}");

    // The report turns it into a table, targets and charts.
    let charts = out.path().join("charts");
    let md = out.path().join("BENCHMARKS.md");
    std::fs::write(&md, "# Benchmarks\n").expect("write");
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_canvas-load"))
        .arg("report")
        .arg("--results")
        .arg(out.path())
        .arg("--charts")
        .arg(&charts)
        .arg("--markdown")
        .arg(&md)
        .output()
        .expect("report runs");
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let text = std::fs::read_to_string(&md).expect("markdown");
    assert!(text.starts_with("# Benchmarks\n"), "{text}");
    assert!(text.contains("<!-- bench-compare:start -->"), "{text}");
    assert!(
        text.contains("| W2 ingest, updates/s received by an observer |"),
        "{text}"
    );
    assert!(
        text.contains("| W6 errors (deliveries lost + peers closed) |"),
        "{text}"
    );
    assert!(text.contains("| W7 p99 ms |"), "{text}");
    for chart in [
        "w2-throughput.svg",
        "w3-latency.svg",
        "w3-ramp.svg",
        "w4-rss.svg",
    ] {
        let svg = std::fs::read_to_string(charts.join(chart)).expect(chart);
        assert!(svg.contains("<svg"), "{chart}");
    }
    server.stop().await;
}
