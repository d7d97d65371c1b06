//! Authentication and authorization against the real server: password files
//! written by Debian's `mosquitto_passwd` and by `herald passwd`, wrong
//! passwords, anonymous clients, the failed-login limit, ACL denials on
//! SUBSCRIBE, PUBLISH and delivery, client ids bound to usernames, and
//! reloads.
//!
//! Where `mosquitto_passwd` is missing the tests that need it are skipped
//! with a message, unless `CI` is set (CI installs it: `scripts/deps`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bounded, stat, wire, Got, Raw, TestServer, QUIET};
use herald::codec::Packet;
use tempfile::TempDir;

const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";

fn mosquitto_passwd_available() -> bool {
    let present = Path::new(MOSQUITTO_PASSWD).exists();
    if !present {
        if std::env::var_os("CI").is_some() {
            panic!("{MOSQUITTO_PASSWD} missing in CI (install mosquitto)");
        }
        eprintln!("skipping: {MOSQUITTO_PASSWD} not installed (apt install mosquitto)");
    }
    present
}

/// Runs `mosquitto_passwd` with `args`; panics when it fails.
fn mosquitto_passwd(args: &[&str]) {
    let out = Command::new(MOSQUITTO_PASSWD)
        .args(args)
        .output()
        .expect("mosquitto_passwd runs");
    assert!(out.status.success(), "mosquitto_passwd {args:?}: {out:?}");
}

/// Runs `herald passwd ...`.
fn herald_passwd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("passwd")
        .args(args)
        .output()
        .expect("herald runs")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

async fn server_with(password_file: Option<PathBuf>, acl_file: Option<PathBuf>) -> TestServer {
    TestServer::start_with(|c| {
        c.auth.password_file = password_file;
        c.auth.acl_file = acl_file;
    })
    .await
}

/// The CONNACK code for a login; a refusal must be followed by the close of
/// the connection ([MQTT-3.2.2-5] in 3.1.1, [MQTT-3.2.2-7] in 5.0).
async fn connack_code(server: &TestServer, c: wire::Connect) -> u8 {
    let (mut raw, ack) = Raw::connect_raw(server.addr, &c).await;
    if ack.code != 0 {
        let after = raw.expect_close().await;
        assert!(
            after.is_empty(),
            "nothing after a refusing CONNACK: {after:?}"
        );
    }
    ack.code
}

/// Files written by the real `mosquitto_passwd` ($7$ PBKDF2-SHA512, the
/// default, and $6$ salted SHA-512 with `-H sha512`) are read as they are.
#[tokio::test]
async fn mosquitto_passwd_files_are_accepted() {
    if !mosquitto_passwd_available() {
        return;
    }
    bounded(async {
        let dir = TempDir::new().expect("tempdir");
        let pw = dir.path().join("passwd");
        let f = path_str(&pw);
        mosquitto_passwd(&["-c", "-b", f, "alice", "wonderland"]);
        mosquitto_passwd(&["-H", "sha512", "-b", f, "bob", "builder"]);
        let text = std::fs::read_to_string(&pw).expect("read");
        assert!(text.contains("alice:$7$"), "{text}");
        assert!(text.contains("bob:$6$"), "{text}");
        let server = server_with(Some(pw.clone()), None).await;

        // Right passwords: accepted, in 3.1.1 and 5.0.
        let c = wire::Connect::v311("a").login("alice", "wonderland");
        assert_eq!(connack_code(&server, c).await, 0);
        let c = wire::Connect::v5("b").login("bob", "builder");
        assert_eq!(connack_code(&server, c).await, 0);
        // Wrong password: 3.1.1 return code 4, 5.0 reason 0x86.
        let c = wire::Connect::v311("a").login("alice", "Wonderland");
        assert_eq!(connack_code(&server, c).await, 4);
        let c = wire::Connect::v5("b").login("bob", "build");
        assert_eq!(connack_code(&server, c).await, 0x86);
        // Unknown user: the same answer as a wrong password.
        let c = wire::Connect::v5("c").login("carol", "builder");
        assert_eq!(connack_code(&server, c).await, 0x86);
        // No username at all: anonymous is off with a password file.
        assert_eq!(connack_code(&server, wire::Connect::v311("d")).await, 5);
        assert_eq!(connack_code(&server, wire::Connect::v5("d")).await, 0x87);
        assert_eq!(stat(&server.broker.stats.logins_failed_bad_credentials), 3);
        assert_eq!(stat(&server.broker.stats.logins_failed_not_authorized), 2);
        server.stop().await;
    })
    .await;
}

/// `herald passwd` writes argon2id entries beside Mosquitto's, deletes
/// users, and the broker takes the file as it is.
#[tokio::test]
async fn herald_passwd_add_batch_delete() {
    bounded(async {
        let dir = TempDir::new().expect("tempdir");
        let pw = dir.path().join("passwd");
        let f = path_str(&pw);
        let out = herald_passwd(&["batch", "-c", f, "alice", "one"]);
        assert!(out.status.success(), "{out:?}");
        // `add` reads the password from standard input.
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["passwd", "add", f, "bob"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("herald runs");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped");
            stdin.write_all(b"two\n").expect("write");
        }
        assert!(child.wait().expect("waits").success());
        let out = herald_passwd(&["batch", f, "carol", "three"]);
        assert!(out.status.success());
        let out = herald_passwd(&["delete", f, "carol"]);
        assert!(out.status.success());
        let out = herald_passwd(&["delete", f, "carol"]);
        assert!(!out.status.success(), "deleting a missing user fails");
        let text = std::fs::read_to_string(&pw).expect("read");
        assert!(text.contains("alice:$argon2id$"), "{text}");
        assert!(text.contains("bob:$argon2id$"), "{text}");
        assert!(!text.contains("carol"), "{text}");

        let server = server_with(Some(pw.clone()), None).await;
        let c = wire::Connect::v5("a").login("alice", "one");
        assert_eq!(connack_code(&server, c).await, 0);
        let c = wire::Connect::v311("b").login("bob", "two");
        assert_eq!(connack_code(&server, c).await, 0);
        let c = wire::Connect::v311("c").login("carol", "three");
        assert_eq!(connack_code(&server, c).await, 4);
        server.stop().await;
    })
    .await;
}

/// Failed logins are limited per source address: past the limit even the
/// right password is refused (5.0: 0x9F) until the minute is over.
#[tokio::test]
async fn failed_logins_are_rate_limited() {
    bounded(async {
        let dir = TempDir::new().expect("tempdir");
        let pw = dir.path().join("passwd");
        herald::auth::passwd(
            &pw,
            &herald::auth::PasswdOp::Set {
                user: "alice".into(),
                password: "right".into(),
            },
            true,
        )
        .expect("passwd");
        let server = TestServer::start_with(|c| {
            c.auth.password_file = Some(pw);
            c.auth.max_failed_logins_per_minute = 3;
        })
        .await;
        for _ in 0..3 {
            let c = wire::Connect::v5("a").login("alice", "wrong");
            assert_eq!(connack_code(&server, c).await, 0x86);
        }
        let c = wire::Connect::v5("a").login("alice", "right");
        assert_eq!(connack_code(&server, c).await, 0x9F);
        let c = wire::Connect::v311("a").login("alice", "right");
        assert_eq!(connack_code(&server, c).await, 5);
        assert_eq!(stat(&server.broker.stats.logins_failed_rate_limited), 2);
        server.stop().await;
    })
    .await;
}

const ACL: &str = "\
topic read public/#
user alice
topic readwrite alice/#
topic deny alice/secret
topic read public/#
user bob
topic readwrite bob/#
topic read alice/#
pattern readwrite clients/%c/#
";

fn write_file(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// A denied SUBSCRIBE filter gets 0x80 (3.1.1) or 0x87 (5.0); the others
/// in the same packet are granted, codes in filter order [MQTT-3.9.3-1].
#[tokio::test]
async fn acl_denies_subscribe() {
    bounded(async {
        let dir = TempDir::new().expect("tempdir");
        let acl = write_file(&dir, "acl", ACL);
        let server = server_with(None, Some(acl)).await;
        let c = wire::Connect::v311("a3").login("alice", "x");
        let (mut a3, _) = Raw::connect(server.addr, &c).await;
        let codes = a3
            .subscribe(1, &[("alice/#", 1), ("bob/#", 1), ("alice/secret", 0)])
            .await;
        assert_eq!(codes, vec![1, 0x80, 0x80]);
        let c = wire::Connect::v5("a5").login("alice", "x");
        let (mut a5, _) = Raw::connect(server.addr, &c).await;
        assert_eq!(
            a5.subscribe(1, &[("bob/x", 0), ("clients/a5/#", 2)]).await,
            vec![0x87, 2]
        );
        // Anonymous clients get the rules before the first `user` line.
        let (mut anon, _) = Raw::connect(server.addr, &wire::Connect::v5("n")).await;
        assert_eq!(
            anon.subscribe(1, &[("public/+", 0), ("alice/#", 0)]).await,
            vec![0, 0x87]
        );
        assert_eq!(stat(&server.broker.stats.acl_denied_subscribe), 4);
        server.stop().await;
    })
    .await;
}

/// A denied PUBLISH is dropped: 3.1.1 gets its PUBACK as usual, 5.0 QoS 1
/// gets PUBACK 0x87 and QoS 2 PUBREC 0x87; nobody receives it. A message a
/// subscriber may not read (a `deny` inside its filter) is not delivered.
#[tokio::test]
async fn acl_denies_publish_and_delivery() {
    bounded(async {
        let dir = TempDir::new().expect("tempdir");
        let acl = write_file(&dir, "acl", ACL);
        let server = server_with(None, Some(acl)).await;
        // bob reads alice/# (including alice/secret, which alice may not).
        let c = wire::Connect::v311("bob").login("bob", "x");
        let (mut bob, _) = Raw::connect(server.addr, &c).await;
        assert_eq!(bob.subscribe(1, &[("#", 1)]).await, vec![0x80]);
        assert_eq!(bob.subscribe(2, &[("alice/#", 1)]).await, vec![1]);
        // alice subscribes to her own tree; she must not get alice/secret.
        let c = wire::Connect::v311("alice-sub").login("alice", "x");
        let (mut alice_sub, _) = Raw::connect(server.addr, &c).await;
        assert_eq!(alice_sub.subscribe(1, &[("alice/#", 1)]).await, vec![1]);

        let c = wire::Connect::v311("alice3").login("alice", "x");
        let (mut a3, _) = Raw::connect(server.addr, &c).await;
        a3.send(&wire::publish3("bob/x", 1, false, 7, b"no")).await;
        match a3.expect_packet().await {
            Packet::PubAck(r) => assert_eq!(r.packet_id, 7),
            other => panic!("expected PUBACK, got {other:?}"),
        }
        let c = wire::Connect::v5("alice5").login("alice", "x");
        let (mut a5, _) = Raw::connect(server.addr, &c).await;
        a5.send(&wire::publish5("bob/x", 1, false, 8, b"no")).await;
        match a5.expect_packet().await {
            Packet::PubAck(r) => assert_eq!((r.packet_id, r.reason), (8, 0x87)),
            other => panic!("expected PUBACK 0x87, got {other:?}"),
        }
        a5.send(&wire::publish5("bob/x", 2, false, 9, b"no")).await;
        match a5.expect_packet().await {
            Packet::PubRec(r) => assert_eq!((r.packet_id, r.reason), (9, 0x87)),
            other => panic!("expected PUBREC 0x87, got {other:?}"),
        }
        // alice/secret: alice may not even write it.
        a5.send(&wire::publish5("alice/secret", 1, false, 10, b"s"))
            .await;
        match a5.expect_packet().await {
            Packet::PubAck(r) => assert_eq!(r.reason, 0x87),
            other => panic!("expected PUBACK 0x87, got {other:?}"),
        }
        // An allowed publish reaches both subscribers.
        a5.send(&wire::publish5("alice/ok", 0, false, 0, b"yes"))
            .await;
        assert_eq!(&*bob.expect_publish().await.topic, "alice/ok");
        assert_eq!(&*alice_sub.expect_publish().await.topic, "alice/ok");
        bob.expect_quiet(QUIET).await;
        alice_sub.expect_quiet(QUIET).await;
        assert_eq!(stat(&server.broker.stats.acl_denied_publish), 4);
        server.stop().await;
    })
    .await;
}

/// A will on a topic the client may not write is refused at CONNECT.
#[tokio::test]
async fn acl_denies_a_will_it_could_not_publish() {
    bounded(async {
        let dir = TempDir::new().expect("tempdir");
        let acl = write_file(&dir, "acl", ACL);
        let server = server_with(None, Some(acl)).await;
        let will = wire::Will {
            topic: "bob/will".into(),
            payload: b"x".to_vec(),
            ..wire::Will::default()
        };
        let c = wire::Connect::v5("w")
            .login("alice", "x")
            .will(will.clone());
        assert_eq!(connack_code(&server, c).await, 0x87);
        let c = wire::Connect::v311("w").login("bob", "x").will(will);
        assert_eq!(connack_code(&server, c).await, 0);
        server.stop().await;
    })
    .await;
}

/// A client id whose session exists belongs to the username that created
/// it: another user cannot take it over (the owner stays connected), the
/// owner can.
#[tokio::test]
async fn client_id_is_bound_to_its_username() {
    bounded(async {
        let server = TestServer::start().await;
        let c = wire::Connect::v5("dev1")
            .clean(false)
            .prop(wire::p_u32(0x11, 60))
            .login("alice", "x");
        let (mut alice, _) = Raw::connect(server.addr, &c).await;
        let c = wire::Connect::v5("dev1").login("mallory", "x");
        assert_eq!(connack_code(&server, c).await, 0x87);
        let c = wire::Connect::v311("dev1");
        assert_eq!(connack_code(&server, c).await, 5, "anonymous cannot either");
        alice.send(&wire::pingreq()).await;
        assert!(matches!(alice.expect_packet().await, Packet::PingResp));
        // The owner takes over her own session [MQTT-3.1.4-3].
        let c = wire::Connect::v5("dev1")
            .clean(false)
            .prop(wire::p_u32(0x11, 60))
            .login("alice", "x");
        let (_again, ack) = Raw::connect(server.addr, &c).await;
        assert!(ack.session_present);
        alice.expect_disconnect(0x8E).await;
        server.stop().await;
    })
    .await;
}

/// Two users racing for a new client id: exactly one gets it, however the
/// logins interleave (the check and the claim are one step). Two worker
/// threads, so the two CONNECTs are handled in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_logins_for_a_new_client_id_cannot_both_win() {
    bounded(async {
        let server = TestServer::start().await;
        for round in 0..50 {
            let id = format!("race-{round}");
            let connect = |user: &str| {
                wire::Connect::v5(&id)
                    .clean(false)
                    .prop(wire::p_u32(0x11, 60))
                    .login(user, "x")
            };
            let (ca, cb) = (connect("alice"), connect("bob"));
            let ((mut a, ack_a), (mut b, ack_b)) = tokio::join!(
                Raw::connect_raw(server.addr, &ca),
                Raw::connect_raw(server.addr, &cb)
            );
            let codes = [ack_a.code, ack_b.code];
            assert!(
                codes == [0, 0x87] || codes == [0x87, 0],
                "round {round}: one login wins, the other is refused: {codes:?}"
            );
            // The winner keeps its connection: it was not taken over.
            let winner = if ack_a.code == 0 { &mut a } else { &mut b };
            winner.send(&wire::pingreq()).await;
            assert!(matches!(winner.expect_packet().await, Packet::PingResp));
        }
        server.stop().await;
    })
    .await;
}

/// Anonymous clients: allowed on the loopback default; refused when the
/// config says so.
#[tokio::test]
async fn anonymous_can_be_turned_off() {
    bounded(async {
        let server = TestServer::start_with(|c| c.auth.allow_anonymous = Some(false)).await;
        assert_eq!(connack_code(&server, wire::Connect::v311("x")).await, 5);
        server.stop().await;
    })
    .await;
}

/// A reload swaps the files; a broken file leaves the previous ones.
#[tokio::test]
async fn reload_swaps_the_files_and_keeps_them_on_error() {
    bounded(async {
        let dir = TempDir::new().expect("tempdir");
        let acl = write_file(&dir, "acl", "user alice\ntopic read a/#\n");
        let server = server_with(None, Some(acl.clone())).await;
        let c = wire::Connect::v5("a").login("alice", "x");
        let (mut a, _) = Raw::connect(server.addr, &c).await;
        assert_eq!(a.subscribe(1, &[("b/#", 0)]).await, vec![0x87]);
        std::fs::write(&acl, "user alice\ntopic read b/#\n").expect("write");
        server.broker.security.reload().expect("reloads");
        // The connected client sees the new rules.
        assert_eq!(
            a.subscribe(2, &[("b/#", 0), ("a/#", 0)]).await,
            vec![0, 0x87]
        );
        std::fs::write(&acl, "bogus line\n").expect("write");
        assert!(server.broker.security.reload().is_err());
        assert_eq!(a.subscribe(3, &[("b/x", 0)]).await, vec![0]);
        match a.recv_within(QUIET).await {
            Got::Timeout => {}
            other => panic!("unexpected {other:?}"),
        }
        server.stop().await;
    })
    .await;
}

/// `--help` tells the truth about the security flags and subcommand.
#[test]
fn help_lists_the_security_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--help")
        .output()
        .expect("herald runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--password-file",
        "--acl-file",
        "passwd",
        "SIGHUP",
        "[[listeners]]",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}: {help}");
    }
    let out = herald_passwd(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["add", "batch", "delete"] {
        assert!(
            help.contains(needle),
            "passwd --help lacks {needle}: {help}"
        );
    }
}
