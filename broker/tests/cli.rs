//! The `herald` binary's command line: flags, config file, errors.

use std::process::Command;

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

#[test]
fn print_default_config_is_valid_toml_of_the_defaults() {
    let out = herald()
        .arg("--print-default-config")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let parsed: herald::config::Config = toml::from_str(&text).expect("parses");
    assert_eq!(parsed, herald::config::Config::default());
}

#[test]
fn help_names_every_flag() {
    let out = herald().arg("--help").output().expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for flag in [
        "--config",
        "--listen",
        "--data-dir",
        "--print-default-config",
        "HERALD_LISTEN",
        "HERALD_DATA_DIR",
        "HERALD_CONFIG",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn unknown_config_key_stops_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nno_such_key = 1\n").expect("write");
    let out = herald().arg("--config").arg(&file).output().expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no_such_key"), "stderr: {err}");
}

#[test]
fn invalid_limit_stops_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("herald.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:0\"\n[limits]\nmax_inflight_messages = 0\n",
    )
    .expect("write");
    let out = herald()
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_inflight_messages"), "stderr: {err}");
}

#[test]
fn a_second_broker_on_the_same_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut first = herald()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawns");
    // Wait (bounded) for the first one to take the lock.
    let lock = data.join("LOCK");
    for _ in 0..100 {
        if lock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let out = herald()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .expect("runs");
    let _ = first.kill();
    let _ = first.wait();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "stderr: {err}");
}

#[test]
fn the_listen_address_is_read_from_the_environment() {
    // An unusable address from the environment is reported as such.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = herald()
        .env("HERALD_LISTEN", "not-an-address")
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not-an-address"), "stderr: {err}");
}
