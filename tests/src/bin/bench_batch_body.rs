//! Benchmark: the peak memory of reading a batch body (`POST /v1/apps/{appid}/batches`,
//! `wxpush_shared::batch::read_batch_body`: everything `create` checks before it records
//! anything) — the largest valid body (100 000 recipients) and invalid ones of Lambda's
//! 6 MiB: `0`s or `{}`s as recipients, `0`s inside the message, `0`s as the whole body, and
//! arrays nested as deep as the body allows.
//!
//! Each case runs in a child process of its own (this binary with `--case NAME`): it builds
//! the body, resets the peak RSS (`/proc/self/clear_refs`), reads the body, and reports
//! `VmHWM` minus the RSS before reading — the memory reading it took on top of the body.
//! Prints a markdown table. Run with
//! `cargo run --release -p wxpush-tests --bin bench_batch_body` (or `bash scripts/bench`).

use std::io::Write;
use std::time::Instant;

/// Lambda's payload limit, which the send function's body limit follows.
const BODY_LIMIT: usize = 6 * 1024 * 1024;

const CASES: &[(&str, &str)] = &[
    (
        "valid-100k",
        "100 000 recipients (valid, the largest batch)",
    ),
    ("zeros-recipients", "6 MiB: `\"recipients\": [0,0,0,…]`"),
    (
        "objects-recipients",
        "6 MiB: `\"recipients\": [{},{},{},…]`",
    ),
    (
        "zeros-message",
        "6 MiB: `\"message\": {…, \"data\": [0,0,…]}`",
    ),
    ("zeros-body", "6 MiB: `[0,0,0,…]` as the body"),
    ("deep-recipients", "6 MiB: `\"recipients\": [[[[…`"),
    ("deep-message", "6 MiB: `\"message\": [[[[…`"),
];

const MESSAGE: &str =
    r#"{"type":"template","template_id":"T","data":{"thing1":{"value":"hello"}}}"#;

/// `{prefix` + `item,` repeated up to the limit + `suffix` (the last comma dropped).
fn filled(prefix: &str, item: &str, suffix: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(BODY_LIMIT);
    b.extend_from_slice(prefix.as_bytes());
    while b.len() + item.len() + 1 + suffix.len() <= BODY_LIMIT {
        b.extend_from_slice(item.as_bytes());
        b.push(b',');
    }
    if b.last() == Some(&b',') {
        b.pop();
    }
    b.extend_from_slice(suffix.as_bytes());
    b
}

fn body(case: &str) -> Vec<u8> {
    let recipients = format!(r#"{{"message":{MESSAGE},"recipients":["#);
    match case {
        "valid-100k" => {
            let mut b = recipients.into_bytes();
            for i in 0..100_000 {
                if i > 0 {
                    b.push(b',');
                }
                write!(b, r#"{{"openid":"oBench{i:022}"}}"#).unwrap();
            }
            b.extend_from_slice(b"]}");
            b
        }
        "zeros-recipients" => filled(&recipients, "0", "]}"),
        "objects-recipients" => filled(&recipients, "{}", "]}"),
        "zeros-message" => filled(
            r#"{"recipients":[{"openid":"o1"}],"message":{"type":"template","template_id":"T","data":["#,
            "0",
            "]}}",
        ),
        "zeros-body" => filled("[", "0", "]"),
        "deep-recipients" | "deep-message" => {
            let field = case.trim_start_matches("deep-");
            let mut b = format!(r#"{{"{field}":"#).into_bytes();
            b.resize(BODY_LIMIT, b'[');
            b
        }
        other => panic!("no case {other}"),
    }
}

/// A `kB` line of `/proc/self/status`.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').trim().strip_suffix(" kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One case, in this process: prints `case body_bytes rss_kib peak_kib micros answer`.
fn run_case(case: &str) {
    let body = body(case);
    // The peak so far (building the body) is not the reader's: start counting from here.
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs (Linux 4.0+)");
    let rss = status_kib("VmRSS");
    let started = Instant::now();
    let answer = match wxpush_shared::batch::read_batch_body(&body) {
        Ok((recipients, _)) => format!("ok:{recipients}"),
        Err(e) => format!("{}:{}", e.status().as_u16(), e.code()),
    };
    let micros = started.elapsed().as_micros();
    let peak = status_kib("VmHWM");
    println!("{case} {} {rss} {peak} {micros} {answer}", body.len());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, case] = args.as_slice()
        && flag == "--case"
    {
        run_case(case);
        return;
    }
    println!("| body | size | answer | peak RSS reading it (MiB) | ÷ body size | time (ms) |");
    println!("|---|---|---|---|---|---|");
    for (case, what) in CASES {
        let out = std::process::Command::new(&args[0])
            .args(["--case", case])
            .output()
            .expect("the benchmark runs itself");
        assert!(out.status.success(), "{case}: {out:?}");
        let line = String::from_utf8_lossy(&out.stdout);
        let f: Vec<&str> = line.split_whitespace().collect();
        let (size, rss, peak, micros) = (
            f[1].parse::<f64>().unwrap(),
            f[2].parse::<f64>().unwrap(),
            f[3].parse::<f64>().unwrap(),
            f[4].parse::<f64>().unwrap(),
        );
        let used = (peak - rss).max(0.0) * 1024.0;
        println!(
            "| {what} | {:.2} MiB | {} | {:.1} | {:.2}× | {:.1} |",
            size / 1048576.0,
            f[5],
            used / 1048576.0,
            used / size,
            micros / 1000.0
        );
    }
}
