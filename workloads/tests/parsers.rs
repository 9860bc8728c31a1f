//! Output parsers on output captured from the real tools on Debian 12 (tests/data/).

use workloads::{hackbench, nginx_wrk, redis, stress_ng, sysbench};

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn stress_ng_metrics_brief() {
    let m = stress_ng::parse(&data("stress-ng-cpu.txt"), "cpu").unwrap();
    assert_eq!(m.bogo_ops, 2366.0);
    assert_eq!(m.real_time_s, 1.00);
    assert_eq!(m.usr_time_s, 1.99);
    assert_eq!(m.sys_time_s, 0.00);
    assert_eq!(m.bogo_ops_per_s_real, 2361.22);
}

#[test]
fn stress_ng_missing_stressor_is_an_error() {
    let err = stress_ng::parse(&data("stress-ng-cpu.txt"), "vm").unwrap_err();
    assert!(err.to_string().contains("no metrics row"), "{err}");
    // The header rows ("stressor", "(secs)") are not mistaken for metrics.
    assert!(stress_ng::parse(&data("stress-ng-cpu.txt"), "stressor").is_err());
}

#[test]
fn hackbench_time() {
    assert_eq!(hackbench::parse(&data("hackbench.txt")).unwrap(), 0.230);
    assert!(hackbench::parse("Running in process mode").is_err());
    let h = hackbench::Hackbench {
        groups: 2,
        loops: 100,
    };
    assert_eq!(h.messages(100), 2 * 20 * 20 * 100);
}

#[test]
fn sysbench_cpu() {
    let m = sysbench::parse(&data("sysbench-cpu.txt")).unwrap();
    assert_eq!(m.events_per_s, 6414.07);
    assert_eq!(m.total_time_s, 1.0015);
    assert_eq!(m.total_events, 6427);
    assert_eq!(m.latency_p99_ms, Some(0.47));
    // From the histogram: the bucket holding the 3214th of 6427 events.
    assert_eq!(m.latency_p50_ms, Some(0.296));
}

#[test]
fn sysbench_histogram_percentiles() {
    let out = "       1.000 |**** 50\n       2.000 |**** 49\n       9.000 |* 1\n";
    assert_eq!(sysbench::histogram_percentile(out, 50.0), Some(1.0));
    assert_eq!(sysbench::histogram_percentile(out, 99.0), Some(2.0));
    assert_eq!(sysbench::histogram_percentile(out, 100.0), Some(9.0));
    assert_eq!(sysbench::histogram_percentile("no histogram", 50.0), None);
}

#[test]
fn wrk_latency() {
    let m = nginx_wrk::parse(&data("wrk-latency.txt")).unwrap();
    assert_eq!(m.requests_per_s, 24159.20);
    assert_eq!(m.requests, 24290);
    assert!((m.duration_s - 1.01).abs() < 1e-9);
    assert!((m.latency_p50_us - 578.0).abs() < 1e-9);
    assert!((m.latency_p99_us - 4660.0).abs() < 1e-9);
    assert_eq!(m.non_2xx_3xx, 0);
}

#[test]
fn wrk_without_latency_flag_is_an_error() {
    let out: String = data("wrk-latency.txt")
        .lines()
        .filter(|l| !l.contains('%') || l.contains("Stdev"))
        .map(|l| format!("{l}\n"))
        .collect();
    let err = nginx_wrk::parse(&out).unwrap_err();
    assert!(err.to_string().contains("--latency"), "{err}");
}

#[test]
fn redis_benchmark_csv() {
    let rows = redis::parse(&data("redis-benchmark.csv")).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].test, "SET");
    assert_eq!(rows[0].requests_per_s, 31104.20);
    assert_eq!(rows[0].latency_p50_ms, 0.983);
    assert_eq!(rows[0].latency_p99_ms, 3.071);
    assert_eq!(rows[1].test, "GET");
    assert_eq!(rows[1].requests_per_s, 26737.97);
    assert_eq!(rows[1].latency_p99_ms, 6.647);
    assert!(redis::parse("").is_err());
}

#[test]
fn nginx_config_listens_on_loopback_only() {
    let c = nginx_wrk::nginx_config(std::path::Path::new("/tmp/x"), 8081, 1);
    assert!(c.contains("listen 127.0.0.1:8081;"));
    assert!(c.contains("daemon off;"));
    assert!(c.contains("pid /tmp/x/nginx.pid;"));
}
