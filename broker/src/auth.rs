//! Authentication: the password file, password hashes, and the per-address
//! limit on failed logins.
//!
//! A password file has one `username:hash` entry per line; blank lines and
//! lines starting with `#` are ignored. Three hash formats are read:
//! - `$argon2id$v=19$m=..,t=..,p=..$salt$hash` (PHC string): what Herald
//!   writes (`herald passwd`);
//! - `$7$iterations$salt$hash`: Mosquitto 2's PBKDF2-HMAC-SHA512, salt and
//!   hash in standard base64;
//! - `$6$salt$hash`: Mosquitto 1.x's salted SHA-512, `SHA512(password ‖ salt)`.
//!
//! Every comparison of a computed hash with a stored one is constant time,
//! and an unknown user costs as much as a known one (a dummy hash is
//! checked), so timing tells nothing about which usernames exist.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use parking_lot::Mutex;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// A password file or ACL file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {why}")]
    Syntax {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("{0}")]
    Usage(String),
}

/// One stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// A PHC string (`$argon2id$...`), verified by the argon2 crate.
    Argon2(String),
    /// Mosquitto `$7$`: PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// Mosquitto `$6$`: one round of SHA-512 over password then salt.
    Sha512 { salt: Vec<u8>, hash: Vec<u8> },
}

impl std::fmt::Debug for StoredHash {
    // Hashes are secrets too: only the format is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StoredHash::Argon2(_) => "StoredHash::Argon2",
            StoredHash::Pbkdf2Sha512 { .. } => "StoredHash::Pbkdf2Sha512",
            StoredHash::Sha512 { .. } => "StoredHash::Sha512",
        })
    }
}

/// Highest PBKDF2 iteration count accepted from a file: a typo must not
/// turn every login into minutes of CPU.
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

impl StoredHash {
    /// Parses the hash part of a password-file line.
    pub fn parse(s: &str) -> Result<StoredHash, String> {
        if s.starts_with("$argon2") {
            PasswordHash::new(s).map_err(|e| format!("invalid argon2 hash: {e}"))?;
            return Ok(StoredHash::Argon2(s.to_owned()));
        }
        let b64 = |what: &str, v: &str| {
            B64.decode(v)
                .map_err(|e| format!("invalid base64 in the {what}: {e}"))
        };
        if let Some(rest) = s.strip_prefix("$7$") {
            let mut parts = rest.split('$');
            let (Some(iter), Some(salt), Some(hash), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err("a $7$ hash is $7$iterations$salt$hash".into());
            };
            let iterations: u32 = iter
                .parse()
                .map_err(|_| format!("invalid iteration count {iter:?}"))?;
            if iterations == 0 || iterations > MAX_PBKDF2_ITERATIONS {
                return Err(format!(
                    "iteration count must be between 1 and {MAX_PBKDF2_ITERATIONS}"
                ));
            }
            let (salt, hash) = (b64("salt", salt)?, b64("hash", hash)?);
            if hash.is_empty() || hash.len() > 64 {
                return Err("a $7$ hash is 1 to 64 bytes".into());
            }
            return Ok(StoredHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            });
        }
        if let Some(rest) = s.strip_prefix("$6$") {
            let mut parts = rest.split('$');
            let (Some(salt), Some(hash), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err("a $6$ hash is $6$salt$hash".into());
            };
            let (salt, hash) = (b64("salt", salt)?, b64("hash", hash)?);
            if hash.len() != 64 {
                return Err("a $6$ hash is 64 bytes".into());
            }
            return Ok(StoredHash::Sha512 { salt, hash });
        }
        Err("unknown hash format (expected $argon2id$, $7$ or $6$; plain-text passwords are not accepted)".into())
    }

    /// Whether `password` matches, compared in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Argon2(phc) => match PasswordHash::new(phc) {
                // The argon2 crate compares the outputs in constant time.
                Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
                Err(_) => false,
            },
            StoredHash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => {
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                out.ct_eq(hash).into()
            }
            StoredHash::Sha512 { salt, hash } => {
                let mut d = Sha512::new();
                d.update(password);
                d.update(salt);
                d.finalize().as_slice().ct_eq(hash).into()
            }
        }
    }
}

/// Hashes a password in Herald's default format: argon2id with the argon2
/// crate's default cost (19 MiB, 2 passes, 1 lane: the OWASP baseline) and
/// a random 16-byte salt.
pub fn hash_password(password: &[u8]) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// A hash checked for unknown users so that they take as long as known ones.
fn dummy_hash() -> &'static StoredHash {
    static DUMMY: OnceLock<StoredHash> = OnceLock::new();
    DUMMY.get_or_init(|| {
        match hash_password(b"herald-dummy-password") {
            Ok(phc) => StoredHash::Argon2(phc),
            // No OS randomness: still cost something comparable.
            Err(_) => StoredHash::Pbkdf2Sha512 {
                iterations: 100_000,
                salt: vec![0; 16],
                hash: vec![0; 64],
            },
        }
    })
}

/// A loaded password file: username → hash.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    users: HashMap<String, StoredHash>,
}

impl PasswordFile {
    /// Parses password-file text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<PasswordFile, AuthError> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let syntax = |why: String| AuthError::Syntax {
                path: path.to_owned(),
                line: i + 1,
                why,
            };
            let Some((user, hash)) = line.split_once(':') else {
                return Err(syntax("expected username:hash".into()));
            };
            if user.is_empty() {
                return Err(syntax("empty username".into()));
            }
            let hash = StoredHash::parse(hash).map_err(syntax)?;
            users.insert(user.to_owned(), hash);
        }
        Ok(PasswordFile { users })
    }

    /// Reads and parses a password file.
    pub fn load(path: &Path) -> Result<PasswordFile, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_owned(),
            source,
        })?;
        PasswordFile::parse(&text, path)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `user` exists and `password` is theirs. Unknown users cost
    /// one dummy verification.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(h) => h.verify(password),
            None => {
                let _ = dummy_hash().verify(password);
                false
            }
        }
    }
}

/// What `herald passwd` does to a password file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswdOp {
    /// Add the user or replace their password.
    Set {
        user: String,
        password: String,
    },
    Delete {
        user: String,
    },
}

/// Applies `op` to the file at `path` (created when `create` or missing
/// for a `Set`), keeping every other line as it was. The file is replaced
/// atomically (written beside it, then renamed) with mode 0600.
pub fn passwd(path: &Path, op: &PasswdOp, create: bool) -> Result<(), AuthError> {
    let existing = if create {
        String::new()
    } else {
        match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && matches!(op, PasswdOp::Set { .. }) =>
            {
                String::new()
            }
            Err(source) => {
                return Err(AuthError::Read {
                    path: path.to_owned(),
                    source,
                })
            }
        }
    };
    // Refuse to rewrite a file we could not read back.
    PasswordFile::parse(&existing, path)?;
    let (user, new_line) = match op {
        PasswdOp::Set { user, password } => {
            validate_username(user)?;
            (
                user,
                Some(format!("{user}:{}", hash_password(password.as_bytes())?)),
            )
        }
        PasswdOp::Delete { user } => (user, None),
    };
    let mut out = String::new();
    let mut found = false;
    for line in existing.lines() {
        if line.split_once(':').is_some_and(|(u, _)| u == user) && !line.starts_with('#') {
            found = true;
            if let Some(l) = &new_line {
                out.push_str(l);
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    match (&new_line, found) {
        (Some(l), false) => {
            out.push_str(l);
            out.push('\n');
        }
        (None, false) => {
            return Err(AuthError::Usage(format!(
                "user {user:?} is not in {}",
                path.display()
            )))
        }
        _ => {}
    }
    write_private(path, &out)
}

fn validate_username(user: &str) -> Result<(), AuthError> {
    if user.is_empty() || user.contains(':') || user.contains('\n') || user.starts_with('#') {
        return Err(AuthError::Usage(
            "a username is not empty, has no ':' or newline and does not start with '#'".into(),
        ));
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<(), AuthError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| AuthError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Failed logins per source address within a sliding minute; an address
/// over the limit is refused without its password being checked, which
/// bounds both guessing and the CPU that hashing costs.
#[derive(Debug)]
pub struct LoginLimiter {
    /// Failures allowed per address per window; 0 turns the limit off.
    max_failures: u32,
    window: Duration,
    /// Address → (window start, failures in it). Pruned of old windows
    /// when it grows past `MAX_TRACKED`, so a flood of addresses stays bounded.
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses tracked at once before old entries are pruned; past this after
/// pruning, the oldest half is forgotten.
const MAX_TRACKED: usize = 65_536;

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> LoginLimiter {
        LoginLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `addr` may try to log in now.
    pub fn allowed(&self, addr: IpAddr) -> bool {
        if self.max_failures == 0 {
            return true;
        }
        let map = self.failures.lock();
        match map.get(&addr) {
            Some((start, n)) => start.elapsed() >= self.window || *n < self.max_failures,
            None => true,
        }
    }

    /// Records a failed login from `addr`.
    pub fn failed(&self, addr: IpAddr) {
        if self.max_failures == 0 {
            return;
        }
        let now = Instant::now();
        let mut map = self.failures.lock();
        if map.len() >= MAX_TRACKED {
            let window = self.window;
            map.retain(|_, (start, _)| now.duration_since(*start) < window);
            if map.len() >= MAX_TRACKED {
                let mut starts: Vec<Instant> = map.values().map(|(s, _)| *s).collect();
                starts.sort_unstable();
                let cut = starts[starts.len() / 2];
                map.retain(|_, (start, _)| *start > cut);
            }
        }
        let entry = map.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// Forgets the failures of `addr` (after a successful login).
    pub fn succeeded(&self, addr: IpAddr) {
        if self.max_failures == 0 {
            return;
        }
        self.failures.lock().remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let phc = hash_password(b"s3cret").expect("hashes");
        assert!(phc.starts_with("$argon2id$"));
        let h = StoredHash::parse(&phc).expect("parses");
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"s3cret "));
    }

    /// `$6$` entries are `SHA512(password ‖ salt)`, salt and hash in base64.
    #[test]
    fn sha512_entry() {
        let salt = b"0123456789ab";
        let mut d = Sha512::new();
        d.update(b"pw");
        d.update(salt);
        let line = format!("$6${}${}", B64.encode(salt), B64.encode(d.finalize()));
        let h = StoredHash::parse(&line).expect("parses");
        assert!(h.verify(b"pw"));
        assert!(!h.verify(b"pW"));
    }

    #[test]
    fn pbkdf2_entry() {
        let mut out = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha512>(b"pw", b"salt", 101, &mut out);
        let line = format!("$7$101${}${}", B64.encode(b"salt"), B64.encode(out));
        let h = StoredHash::parse(&line).expect("parses");
        assert!(h.verify(b"pw"));
        assert!(!h.verify(b"px"));
    }

    #[test]
    fn bad_lines_are_refused_with_their_line_number() {
        let p = Path::new("pw");
        let err =
            PasswordFile::parse("# c\n\nalice:plaintext\n", p).expect_err("plain text is refused");
        assert!(err.to_string().contains("pw:3"), "{err}");
        assert!(PasswordFile::parse("nocolon\n", p).is_err());
        assert!(PasswordFile::parse("a:$7$0$AA==$AA==\n", p).is_err());
        assert!(PasswordFile::parse("a:$6$AA==$AA==\n", p).is_err());
    }

    #[test]
    fn unknown_user_is_refused() {
        let f = PasswordFile::parse("", Path::new("pw")).expect("empty file");
        assert!(!f.verify("nobody", b""));
    }

    #[test]
    fn passwd_adds_replaces_and_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "# keep me\n").expect("write");
        let set = |u: &str, p: &str| PasswdOp::Set {
            user: u.into(),
            password: p.into(),
        };
        passwd(&path, &set("alice", "one"), false).expect("add");
        passwd(&path, &set("bob", "two"), false).expect("add");
        passwd(&path, &set("alice", "three"), false).expect("replace");
        let f = PasswordFile::load(&path).expect("loads");
        assert_eq!(f.len(), 2);
        assert!(f.verify("alice", b"three"));
        assert!(!f.verify("alice", b"one"));
        passwd(&path, &PasswdOp::Delete { user: "bob".into() }, false).expect("delete");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# keep me\n"));
        assert!(!text.contains("bob:"));
        assert!(passwd(&path, &PasswdOp::Delete { user: "bob".into() }, false).is_err());
        assert!(passwd(&path, &set("a:b", "x"), false).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn limiter_refuses_after_max_failures_and_forgets_on_success() {
        let l = LoginLimiter::new(2, Duration::from_secs(60));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert!(l.allowed(a));
        l.failed(a);
        assert!(l.allowed(a));
        l.failed(a);
        assert!(!l.allowed(a));
        assert!(l.allowed(b), "the limit is per address");
        l.succeeded(a);
        assert!(l.allowed(a));
        let off = LoginLimiter::new(0, Duration::from_secs(60));
        off.failed(a);
        off.failed(a);
        assert!(off.allowed(a));
    }

    #[test]
    fn limiter_window_expires() {
        let l = LoginLimiter::new(1, Duration::from_millis(1));
        let a: IpAddr = [10, 0, 0, 1].into();
        l.failed(a);
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.allowed(a));
    }
}
