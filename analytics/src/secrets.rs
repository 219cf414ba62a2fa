//! The server key and AES-256-GCM sealing of the secrets in `connection_config`.
//!
//! A sealed secret is the string `v1:` + base64(nonce || ciphertext || tag). The nonce is
//! random (96 bits) for every sealing; the associated data binds a secret to its source and
//! field, so a sealed password copied into another source's row, or into another field,
//! does not open.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::error::{Error, Result};

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;
/// The key file's name inside the data directory.
pub const KEY_FILE_NAME: &str = "analytics-secret.key";

/// The server key that seals secrets at rest. Cheap to clone.
#[derive(Clone)]
pub struct SecretKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A key given as text (a `--secret-key` flag or an environment variable): 32 bytes in
    /// base64 (standard or URL-safe, padded or not) or in 64 hex digits.
    pub fn from_string(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = decode_key(text).ok_or_else(|| {
            Error::Secret(
                "the secret key must be 32 bytes in base64 or 64 hex digits \
                 (make one with `openssl rand -base64 32`)"
                    .into(),
            )
        })?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The key in `dir/analytics-secret.key`, created (mode 0600, 32 random bytes in base64)
    /// when it does not exist yet. Two processes starting at once end up with the same key:
    /// the file is written aside and linked into place, and the loser reads the winner's.
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let path = dir.join(KEY_FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => return Self::from_key_file(&path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{KEY_FILE_NAME}.{}", uuid::Uuid::new_v4()));
        let written = write_new_key(&tmp).and_then(|()| std::fs::hard_link(&tmp, &path));
        let _ = std::fs::remove_file(&tmp);
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        let text = std::fs::read_to_string(&path)?;
        Self::from_key_file(&path, &text)
    }

    /// A new random key as base64 text (what [`SecretKey::from_string`] reads).
    pub fn generate_string() -> String {
        STANDARD.encode(Aes256Gcm::generate_key(OsRng))
    }

    fn from_key_file(path: &Path, text: &str) -> Result<Self> {
        Self::from_string(text)
            .map_err(|e| Error::Secret(format!("key file {}: {e}", path.display())))
    }

    fn from_bytes(bytes: &[u8; 32]) -> Self {
        SecretKey {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)),
        }
    }

    /// Seals `plaintext`; `context` is bound to it (it must be given again to open it).
    pub fn seal(&self, plaintext: &str, context: &[u8]) -> Result<String> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context,
                },
            )
            .map_err(|_| Error::Secret("encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens what [`SecretKey::seal`] made with the same `context`.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<String> {
        let body = sealed
            .strip_prefix(PREFIX)
            .ok_or_else(|| Error::Secret("not a sealed secret (no v1: prefix)".into()))?;
        let raw = STANDARD
            .decode(body)
            .map_err(|_| Error::Secret("sealed secret is not base64".into()))?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(Error::Secret("sealed secret is too short".into()));
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| {
                Error::Secret("a secret does not open with this key (wrong key or tampered)".into())
            })?;
        String::from_utf8(plain).map_err(|_| Error::Secret("secret is not UTF-8".into()))
    }
}

fn write_new_key(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(SecretKey::generate_string().as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())?
    };
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let key = SecretKey::from_string(&SecretKey::generate_string()).expect("key");
        let sealed = key.seal("hunter2", b"source-a/password").expect("seal");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            key.open(&sealed, b"source-a/password").expect("open"),
            "hunter2"
        );
        assert!(key.open(&sealed, b"source-b/password").is_err());
        let other = SecretKey::from_string(&SecretKey::generate_string()).expect("key");
        assert!(other.open(&sealed, b"source-a/password").is_err());
        // two sealings of one secret differ (random nonce)
        assert_ne!(
            sealed,
            key.seal("hunter2", b"source-a/password").expect("seal")
        );
    }

    #[test]
    fn key_text_forms() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        assert!(SecretKey::from_string(hex).is_ok());
        assert!(SecretKey::from_string("short").is_err());
        assert!(SecretKey::from_string(&STANDARD.encode([7u8; 31])).is_err());
        assert!(SecretKey::from_string(&URL_SAFE_NO_PAD.encode([7u8; 32])).is_ok());
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = SecretKey::load_or_create(dir.path()).expect("create");
        let sealed = a.seal("x", b"c").expect("seal");
        let b = SecretKey::load_or_create(dir.path()).expect("load");
        assert_eq!(b.open(&sealed, b"c").expect("open"), "x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE_NAME))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
