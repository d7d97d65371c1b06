//! The real `herald` binary with a password file and an ACL file: SIGHUP
//! reloads both without a restart, and a broken file keeps the old ones.
//! Also Debian's `mosquitto_pub` against a password-protected broker.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::pki::{have_openssl_and_mosquitto, Pki, PUB};
use common::{bounded, wire, Raw};

/// A running `herald` whose log lines arrive on a channel.
struct Herald {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Herald {
    fn start(args: &[&str], data: &Path) -> Herald {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("herald starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut h = Herald {
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = h.wait_line(|l| l.contains("listening") && !l.contains("admin"));
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .expect("the listening line carries addr=");
        h.addr = addr.parse().expect("a socket address");
        h
    }

    /// Waits (at most 10 s) for a log line that satisfies `pred`.
    fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let end = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(e) => panic!("no matching log line from herald: {e}"),
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn herald_passwd(args: &[&str]) {
    let ok = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("passwd")
        .args(args)
        .status()
        .expect("herald passwd runs")
        .success();
    assert!(ok, "herald passwd {args:?}");
}

async fn code(addr: SocketAddr, c: wire::Connect) -> u8 {
    Raw::connect_raw(addr, &c).await.1.code
}

#[tokio::test]
async fn sighup_reloads_the_password_and_acl_files() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let pw = dir.path().join("passwd");
        let acl = dir.path().join("acl");
        let pws = pw.to_str().expect("utf-8");
        herald_passwd(&["batch", "-c", pws, "alice", "one"]);
        std::fs::write(&acl, "user alice\ntopic read a/#\n").expect("write");
        let mut h = Herald::start(
            &[
                "--password-file",
                pws,
                "--acl-file",
                acl.to_str().expect("utf-8"),
            ],
            &dir.path().join("data"),
        );
        assert_eq!(
            code(h.addr, wire::Connect::v311("a").login("alice", "one")).await,
            0
        );
        assert_eq!(
            code(h.addr, wire::Connect::v311("b").login("bob", "two")).await,
            4
        );
        let c = wire::Connect::v5("a").login("alice", "one");
        let (mut a, _) = Raw::connect(h.addr, &c).await;
        assert_eq!(a.subscribe(1, &[("b/#", 0)]).await, vec![0x87]);

        herald_passwd(&["batch", pws, "bob", "two"]);
        std::fs::write(&acl, "user alice\ntopic read b/#\n").expect("write");
        h.signal("-HUP");
        h.wait_line(|l| l.contains("reloaded"));
        assert_eq!(
            code(h.addr, wire::Connect::v311("b").login("bob", "two")).await,
            0
        );
        assert_eq!(a.subscribe(2, &[("b/#", 0)]).await, vec![0]);

        // A broken file: logged, and the previous files stay in force.
        std::fs::write(&pw, "bob:plaintext\n").expect("write");
        h.signal("-HUP");
        h.wait_line(|l| l.contains("reload failed"));
        assert_eq!(
            code(h.addr, wire::Connect::v311("b").login("bob", "two")).await,
            0
        );
        h.signal("-TERM");
        h.wait_line(|l| l.contains("stopped"));
    })
    .await;
}

/// mosquitto_pub with a wrong password is refused; with the right one it
/// publishes.
#[tokio::test]
async fn mosquitto_pub_wrong_and_right_password() {
    if !Path::new(PUB).exists() {
        assert!(std::env::var_os("CI").is_none(), "{PUB} missing in CI");
        eprintln!("skipping: {PUB} not installed");
        return;
    }
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let pw = dir.path().join("passwd");
        let pws = pw.to_str().expect("utf-8");
        herald_passwd(&["batch", "-c", pws, "alice", "one"]);
        let h = Herald::start(&["--password-file", pws], &dir.path().join("data"));
        let port = h.addr.port().to_string();
        for (version, password, ok) in [
            ("mqttv311", "wrong", false),
            ("mqttv5", "wrong", false),
            ("mqttv311", "one", true),
            ("mqttv5", "one", true),
        ] {
            let out = tokio::process::Command::new(PUB)
                .args(["-h", "127.0.0.1", "-p", &port, "-V", version])
                .args(["-u", "alice", "-P", password, "-t", "t", "-m", "x"])
                .output()
                .await
                .expect("mosquitto_pub runs");
            assert_eq!(out.status.success(), ok, "{version} {password}: {out:?}");
            if !ok {
                let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
                assert!(
                    err.contains("password") || err.contains("not authori"),
                    "{version}: {err}"
                );
            }
        }
    })
    .await;
}

/// mosquitto_pub over TLS to `port`, trusting only `ca`.
async fn tls_publish(port: u16, ca: &str) -> std::process::Output {
    tokio::process::Command::new(PUB)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile", ca])
        .args(["-t", "t", "-m", "x"])
        .output()
        .await
        .expect("mosquitto_pub runs")
}

/// SIGHUP also reloads a TLS listener's certificate and key (renewed
/// certificates need no restart): after it, clients that trust only the new
/// CA get in and those that trust only the old one no longer do; a broken
/// key file is logged and the certificate in force stays.
#[tokio::test]
async fn sighup_reloads_tls_certificates() {
    if !have_openssl_and_mosquitto() {
        return;
    }
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let (old, new) = (Pki::new(), Pki::new());
        let cert = dir.path().join("server.pem");
        let key = dir.path().join("server.key");
        let install = |pki: &Pki| {
            std::fs::copy(pki.path("server.pem"), &cert).expect("copy cert");
            std::fs::copy(pki.path("server.key"), &key).expect("copy key");
        };
        install(&old);
        let config = dir.path().join("herald.toml");
        std::fs::write(
            &config,
            format!(
                "[[listeners]]\nlisten = \"127.0.0.1:0\"\nkind = \"tls\"\n\
                 cert_file = {cert:?}\nkey_file = {key:?}\n"
            ),
        )
        .expect("write config");
        let mut h = Herald::start(
            &["--config", config.to_str().expect("utf-8")],
            &dir.path().join("data"),
        );
        let line = h.wait_line(|l| l.contains("listening") && l.contains("tls"));
        let port = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .expect("the TLS listening line carries addr=")
            .port();
        let (old_ca, new_ca) = (old.arg("ca.pem"), new.arg("ca.pem"));
        let out = tls_publish(port, &old_ca).await;
        assert!(out.status.success(), "old CA before the reload: {out:?}");
        assert!(!tls_publish(port, &new_ca).await.status.success());

        install(&new);
        h.signal("-HUP");
        h.wait_line(|l| l.contains("reloaded the TLS certificate"));
        let out = tls_publish(port, &new_ca).await;
        assert!(out.status.success(), "new CA after the reload: {out:?}");
        assert!(
            !tls_publish(port, &old_ca).await.status.success(),
            "the old certificate is no longer served"
        );

        std::fs::write(&key, "not a key\n").expect("write");
        h.signal("-HUP");
        h.wait_line(|l| l.contains("reload failed"));
        let out = tls_publish(port, &new_ca).await;
        assert!(
            out.status.success(),
            "the loaded certificate stays: {out:?}"
        );
        h.signal("-TERM");
        h.wait_line(|l| l.contains("stopped"));
    })
    .await;
}
