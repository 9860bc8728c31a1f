//! End-to-end: each workload runs its real tool briefly and the parsed numbers are positive.
//! A missing tool fails with the error naming its package (scripts/setup.sh installs them).

use std::time::Duration;

use workloads::{
    compile::Compile, hackbench::Hackbench, nginx_wrk::NginxWrk, redis::Redis, stress_ng::StressNg,
    sysbench::Sysbench, Amount, Workload, WorkloadResult,
};

const ONE_SECOND: Amount = Amount::Duration(Duration::from_secs(1));

fn run(w: &dyn Workload, amount: Amount) -> WorkloadResult {
    if let Err(e) = w.check_available() {
        panic!("{}: {e} (run scripts/setup.sh)", w.name());
    }
    let r = w
        .run(amount)
        .unwrap_or_else(|e| panic!("{}: {e}", w.name()));
    eprintln!("{r:?}");
    assert_eq!(r.name, w.name());
    assert!(r.runtime_s > 0.0, "{r:?}");
    let (throughput, unit) = r.throughput.clone().expect("throughput");
    assert!(throughput > 0.0 && throughput.is_finite(), "{r:?}");
    assert!(!unit.is_empty());
    for p in [r.latency_p50_us, r.latency_p99_us].into_iter().flatten() {
        assert!(p > 0.0, "{r:?}");
    }
    if let (Some(p50), Some(p99)) = (r.latency_p50_us, r.latency_p99_us) {
        assert!(p50 <= p99, "{r:?}");
    }
    // Results go into JSON result files.
    let json = serde_json::to_string(&r).unwrap();
    let back: WorkloadResult = serde_json::from_str(&json).unwrap();
    assert_eq!((&back.name, &back.summary), (&r.name, &r.summary));
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    assert!(close(back.runtime_s, r.runtime_s));
    assert!(close(back.throughput.unwrap().0, throughput));
    r
}

#[test]
fn stress_ng_runs() {
    let r = run(&StressNg { workers: 2 }, ONE_SECOND);
    assert_eq!(r.throughput.unwrap().1, "bogo ops/s");
    assert!(r.runtime_s < 10.0);
}

#[test]
fn stress_ng_fixed_ops() {
    run(&StressNg { workers: 1 }, Amount::Size(500));
}

#[test]
fn hackbench_runs() {
    let r = run(
        &Hackbench {
            groups: 2,
            loops: 100,
        },
        Amount::Size(100),
    );
    assert_eq!(r.throughput.unwrap().1, "messages/s");
}

#[test]
fn hackbench_repeats_for_a_duration() {
    let r = run(
        &Hackbench {
            groups: 1,
            loops: 50,
        },
        ONE_SECOND,
    );
    assert!(r.summary.contains(" x"), "{}", r.summary);
}

#[test]
fn sysbench_runs() {
    let r = run(&Sysbench { threads: 2 }, ONE_SECOND);
    assert!(r.latency_p50_us.is_some() && r.latency_p99_us.is_some());
    assert_eq!(r.throughput.unwrap().1, "events/s");
}

#[test]
fn sysbench_fixed_events() {
    let r = run(&Sysbench { threads: 1 }, Amount::Size(500));
    assert!(r.summary.contains("500 events"), "{}", r.summary);
}

/// The port in `marker` followed by digits in a summary (e.g. `127.0.0.1:` or `--port `).
fn port_after(summary: &str, marker: &str) -> u16 {
    let rest = &summary[summary.find(marker).expect(marker) + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

fn assert_stopped(port: u16) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "a server still listens on {addr} after the run"
    );
}

#[test]
fn nginx_wrk_runs() {
    let r = run(&NginxWrk::default(), ONE_SECOND);
    assert_stopped(port_after(&r.summary, "http://127.0.0.1:"));
    assert!(r.latency_p50_us.is_some() && r.latency_p99_us.is_some());
    assert_eq!(r.throughput.unwrap().1, "requests/s");
}

#[test]
fn nginx_wrk_rejects_a_size() {
    let err = NginxWrk::default().run(Amount::Size(10)).unwrap_err();
    assert!(err.to_string().contains("does not support"), "{err}");
}

#[test]
fn redis_runs() {
    let r = run(&Redis::default(), Amount::Size(5000));
    assert_stopped(port_after(&r.summary, "--port "));
    assert!(r.latency_p50_us.is_some() && r.latency_p99_us.is_some());
    assert_eq!(r.throughput.unwrap().1, "requests/s");
}

#[test]
fn compile_runs() {
    // A smaller project than the default keeps the test near 1-2 s on a busy 2-CPU machine.
    let small = Compile {
        units: 6,
        functions_per_unit: 12,
        jobs: 0,
    };
    let r = run(&small, Amount::Size(1));
    assert!(r.summary.contains("7 files"), "{}", r.summary);
    assert_eq!(r.throughput.unwrap().1, "files/s");
}

#[test]
fn all_workloads_are_available() {
    let missing: Vec<String> = workloads::all()
        .iter()
        .filter_map(|w| w.check_available().err().map(|e| e.to_string()))
        .collect();
    assert!(
        missing.is_empty(),
        "missing tools (run scripts/setup.sh): {missing:?}"
    );
}

#[test]
fn missing_tool_error_names_the_package() {
    let err = workloads::require_tool("no-such-tool-aegis", "no-such-package").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no-such-tool-aegis not installed: apt-get install no-such-package"
    );
}
