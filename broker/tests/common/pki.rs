//! A test PKI made at test time with the openssl CLI, and the checks for
//! the external tools TLS tests use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use herald::config::{ListenerConfig, ListenerKind};
use tempfile::TempDir;

pub const PUB: &str = "/usr/bin/mosquitto_pub";
pub const SUB: &str = "/usr/bin/mosquitto_sub";

/// Whether `tool` can run; in CI a missing tool fails the test.
pub fn have(tool: &str, check: impl FnOnce() -> bool) -> bool {
    if check() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} missing in CI (scripts/deps installs it)");
    }
    eprintln!("skipping: {tool} not available (scripts/deps installs it)");
    false
}

pub fn have_openssl_and_mosquitto() -> bool {
    have("openssl", || {
        Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    }) && have("mosquitto-clients", || {
        Path::new(PUB).exists() && Path::new(SUB).exists()
    })
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate
/// with CN=alice, made with the openssl CLI.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = TempDir::new().expect("tempdir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl runs");
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Herald Test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat());
        for (name, cn, ext) in [
            (
                "server",
                "localhost",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "alice", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(dir.path().join(format!("{name}.ext")), ext).expect("write");
            run(&[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={cn}"),
                ],
            ]
            .concat());
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf-8 path").to_owned()
    }

    pub fn listener(&self, kind: ListenerKind) -> ListenerConfig {
        let mut l = ListenerConfig::new(kind, SocketAddr::from(([127, 0, 0, 1], 0)));
        l.cert_file = Some(self.path("server.pem"));
        l.key_file = Some(self.path("server.key"));
        l
    }
}
