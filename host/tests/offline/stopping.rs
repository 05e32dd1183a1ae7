//! A run's timeout stops the work a dropped future cannot: a plugin call stuck in a loop,
//! of either flavor, and a git fetch from a server that accepts and never answers. The run
//! fails at its stage, naming the timeout, long before the plugin's own limit or never. So
//! does a run stopped with no deadline at all (the controller losing its lease or shard).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moor::interrupt::Interrupt;
use moor::reconcile::{Mode, Moor, RunContext, RunReport};
use moor::stage::Stage;

use crate::support::*;

/// Runs pipeline `name` of `text` (a config in `dir`) offline with a run timeout of 1 s.
fn run_with_a_timeout(dir: &Path, text: &str, name: &str) -> (RunReport, Duration) {
    run_until(dir, text, name, Interrupt::after(Duration::from_secs(1)))
}

/// Runs pipeline `name` of `text` (a config in `dir`) offline until `interrupt` stops it.
fn run_until(dir: &Path, text: &str, name: &str, interrupt: Interrupt) -> (RunReport, Duration) {
    moor::init_tls();
    let config = Arc::new(config(dir, text).unwrap());
    let moor = Moor::new(cache_dir()).unwrap();
    let prepared = moor.prepare(config.clone());
    let pipeline = config.pipeline(name).unwrap();
    let ctx = RunContext {
        prepared: &prepared,
        pipeline,
        secrets: Default::default(),
        place: None,
        render: Default::default(),
        interrupt,
    };
    let started = Instant::now();
    let report = futures::executor::block_on(moor.run(&ctx, Mode::Render, None, &|_| {}));
    (report, started.elapsed())
}

fn plugin_config(path: &Path) -> String {
    format!(
        r#"
[[source]]
name = "local"
path = "."

[[plugin]]
name = "stuck"
path = "{}"
sha256 = "{}"
timeout = "60s"

[[pipeline]]
name = "stuck"
source = "local"
render = [{{ use = "stuck", with = {{ action = "loop" }} }}]
"#,
        path.display(),
        sha256_of(path)
    )
}

/// A render by the plugin at `path` in a loop, stopped at the run's timeout at the next look
/// at the interrupt (every 100 ms), not at the plugin's limit of 60 s.
fn assert_a_stuck_render_is_stopped(path: &Path) {
    let dir = tree(&[("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")]);
    let (report, took) = run_with_a_timeout(dir.path(), &plugin_config(path), "stuck");
    let error = report.error().expect("the run failed").to_string();
    assert_eq!(report.stage(), Some(Stage::Render), "{error}");
    assert!(error.contains("plugin `stuck` was stopped: the run's timeout of 1s passed"), "{error}");
    // A run that fails to render is a run of the revision it fetched.
    assert!(report.revision.starts_with("sha256:"), "{:?}", report.revision);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_run_timeout_stops_a_component_stuck_in_a_loop_long_before_the_plugin_limit() {
    assert_a_stuck_render_is_stopped(&probe_path());
}

#[test]
fn a_run_timeout_stops_a_krm_function_stuck_in_a_loop() {
    assert_a_stuck_render_is_stopped(Path::new(moor_test_artifacts::path("krm-probe")));
}

/// A git source on a loopback server that accepts every connection and never says a word.
fn silent_git_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in listener.incoming().flatten() {
            held.push(connection);
        }
    });
    format!(
        r#"
[[source]]
name = "silent"
git = {{ url = "http://127.0.0.1:{port}/deploy.git", ref = "main" }}

[[pipeline]]
name = "web"
source = "silent"
"#
    )
}

#[test]
fn a_run_timeout_stops_a_fetch_from_a_git_server_that_never_answers() {
    let dir = tree(&[]);
    let (report, took) = run_with_a_timeout(dir.path(), &silent_git_server(), "web");
    let error = report.error().expect("the run failed").to_string();
    assert_eq!(report.stage(), Some(Stage::Source), "{error}");
    assert!(error.contains("the fetch was stopped: the run's timeout of 1s passed"), "{error}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_run_stopped_with_no_deadline_stops_a_fetch_stalled_in_its_handshake_within_a_second() {
    // No timeout: the HTTP requests have no deadline, and gix's blocking transport waits on
    // the handshake whatever its interrupt flag says; only the raised interrupt can end it.
    let dir = tree(&[]);
    let interrupt = Interrupt::new();
    let stop = interrupt.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        stop.raise("the lease was lost");
    });
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(run_until(dir.path(), &silent_git_server(), "web", interrupt));
    });
    let (report, took) = result.recv_timeout(Duration::from_secs(30)).expect("the stalled fetch was stopped");
    let error = report.error().expect("the run failed").to_string();
    assert_eq!(report.stage(), Some(Stage::Source), "{error}");
    assert!(error.contains("the fetch was stopped: the lease was lost"), "{error}");
    assert!(took < Duration::from_millis(1500), "stopped {took:?} after the run began, the interrupt at 500 ms");
}
