//! Key files: the master key wrapped under a password.
//!
//! A key file is JSON (it must be readable before any key is known):
//! the Argon2id parameters and salt, and the master key sealed with
//! XChaCha20-Poly1305 under the Argon2id output. Several key files may wrap
//! the same master key; each password opens exactly one of them.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{fill_random, open_with, seal_with, MasterKey};
use crate::FormatError;

const KEY_AD_V1: &[u8] = b"bunker key v1";
const KEY_AD_V2: &[u8] = b"bunker key v2\0";

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: RFC 9106's second recommended setting with
    /// one lane, about a quarter second on a current core.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// The bounds on what Bunker creates and accepts: from 1 MiB, one pass,
    /// one lane, to 1 GiB, 10 passes, 4 lanes. A key file outside them is
    /// refused unopened: a planted one cannot make a reader spend minutes,
    /// and none can be made too cheap to guess.
    pub const MIN: KdfParams = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    /// See [`KdfParams::MIN`].
    pub const MAX: KdfParams = KdfParams {
        memory_kib: 1024 * 1024,
        iterations: 10,
        parallelism: 4,
    };

    /// Refuses parameters outside [`KdfParams::MIN`]..=[`KdfParams::MAX`].
    pub fn validate(&self) -> Result<(), FormatError> {
        let (lo, hi) = (Self::MIN, Self::MAX);
        let within = |v: u32, a: u32, b: u32| (a..=b).contains(&v);
        if within(self.memory_kib, lo.memory_kib, hi.memory_kib)
            && within(self.iterations, lo.iterations, hi.iterations)
            && within(self.parallelism, lo.parallelism, hi.parallelism)
            && self.memory_kib >= 8 * self.parallelism
        {
            return Ok(());
        }
        Err(FormatError::Kdf(format!(
            "m={} KiB, t={}, p={} is outside what bunker accepts (m {}..={} KiB, t {}..={}, p {}..={})",
            self.memory_kib, self.iterations, self.parallelism,
            lo.memory_kib, hi.memory_kib, lo.iterations, hi.iterations, lo.parallelism, hi.parallelism
        )))
    }

    /// The work of one derivation, for trying cheap key files first.
    pub fn cost(&self) -> u64 {
        self.memory_kib as u64 * self.iterations as u64
    }

    fn argon2(&self) -> Result<Argon2<'static>, FormatError> {
        self.validate()?;
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| FormatError::Kdf(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<XChaCha20Poly1305, FormatError> {
        let mut kek = Zeroizing::new([0u8; 32]);
        self.argon2()?
            .hash_password_into(password, salt, kek.as_mut())
            .map_err(|e| FormatError::Kdf(e.to_string()))?;
        Ok(XChaCha20Poly1305::new(kek.as_ref().into()))
    }
}

/// Key derivation settings in a key file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// Always `argon2id`.
    pub algorithm: String,
    /// Cost parameters.
    #[serde(flatten)]
    pub params: KdfParams,
    /// 32 random bytes, base64.
    pub salt: String,
}

/// Who made a key file, when: shown by `key list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyOrigin {
    /// RFC 3339 creation time.
    pub created: String,
    /// Host that created it.
    pub hostname: String,
    /// User that created it.
    pub username: String,
}

/// The JSON document stored under `keys/`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Key file format version (1).
    pub version: u32,
    /// RFC 3339 creation time.
    pub created: String,
    /// Host that created it.
    pub hostname: String,
    /// User that created it.
    pub username: String,
    /// How the password becomes a key.
    pub kdf: Kdf,
    /// The sealed master key, base64.
    pub data: String,
    /// Whoever opens the repository with this key may back up, list and
    /// restore, but Bunker refuses to forget, prune, remove keys or rewrite
    /// anything (docs/FORMAT.md §2: a client-side policy; the storage's
    /// credentials are the real boundary). Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append_only: bool,
}

impl KeyFile {
    /// Wraps `master` under `password`, as a key file of `version` (1, or 2
    /// whose creation time, host, user and key derivation settings are
    /// authenticated along with the wrapped key).
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        origin: KeyOrigin,
        version: u32,
        append_only: bool,
    ) -> Result<Self, FormatError> {
        let mut salt = [0u8; 32];
        fill_random(&mut salt);
        let cipher = params.derive(password, &salt)?;
        let KeyOrigin {
            created,
            hostname,
            username,
        } = origin;
        let mut kf = KeyFile {
            version,
            created,
            hostname,
            username,
            kdf: Kdf {
                algorithm: "argon2id".into(),
                params,
                salt: B64.encode(salt),
            },
            data: String::new(),
            append_only,
        };
        kf.data = B64.encode(seal_with(
            &cipher,
            &kf.associated_data()?,
            master.as_bytes(),
        ));
        Ok(kf)
    }

    /// What the wrapped key is sealed with: from version 2, everything else
    /// in the file, so none of it can be changed unnoticed.
    fn associated_data(&self) -> Result<Vec<u8>, FormatError> {
        match self.version {
            1 => Ok(KEY_AD_V1.to_vec()),
            2 => {
                let mut ad = KEY_AD_V2.to_vec();
                let p = &self.kdf.params;
                for field in [
                    self.created.as_bytes(),
                    self.hostname.as_bytes(),
                    self.username.as_bytes(),
                    self.kdf.algorithm.as_bytes(),
                    self.kdf.salt.as_bytes(),
                ] {
                    ad.extend_from_slice(&(field.len() as u32).to_le_bytes());
                    ad.extend_from_slice(field);
                }
                for v in [p.memory_kib, p.iterations, p.parallelism] {
                    ad.extend_from_slice(&v.to_le_bytes());
                }
                // Only when set, so every earlier key file stays as it was.
                if self.append_only {
                    ad.extend_from_slice(b"append-only");
                }
                Ok(ad)
            }
            v => Err(FormatError::UnsupportedVersion {
                kind: "key file",
                version: v,
                supported: 2,
            }),
        }
    }

    /// Unwraps the master key; [`FormatError::WrongPassword`] if the password does not fit.
    pub fn open(&self, password: &[u8]) -> Result<MasterKey, FormatError> {
        let ad = self.associated_data()?;
        if self.kdf.algorithm != "argon2id" {
            return Err(FormatError::Kdf(format!(
                "unknown algorithm {:?}",
                self.kdf.algorithm
            )));
        }
        let salt = B64
            .decode(&self.kdf.salt)
            .map_err(|_| FormatError::Json("salt is not base64".into()))?;
        let sealed = B64
            .decode(&self.data)
            .map_err(|_| FormatError::Json("data is not base64".into()))?;
        let cipher = self.kdf.params.derive(password, &salt)?;
        let secret = Zeroizing::new(
            open_with(&cipher, &ad, &sealed, "key").map_err(|_| FormatError::WrongPassword)?,
        );
        let bytes: [u8; 32] = secret
            .as_slice()
            .try_into()
            .map_err(|_| FormatError::Malformed("wrapped key is not 32 bytes"))?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// Serializes as pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("serializing a key file cannot fail")
    }

    /// Parses JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FormatError> {
        serde_json::from_slice(bytes).map_err(|e| FormatError::Json(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams::MIN
    }

    #[test]
    fn version_2_authenticates_what_the_file_says_about_itself() {
        let master = MasterKey::generate();
        let kf = KeyFile::create(
            &master,
            b"pw",
            cheap(),
            KeyOrigin {
                created: "now".into(),
                hostname: "h".into(),
                username: "u".into(),
            },
            2,
            false,
        )
        .unwrap();
        assert!(kf.open(b"pw").is_ok());
        let mut changed = kf.clone();
        changed.hostname = "\x1b[2Jevil".into();
        assert!(
            changed.open(b"pw").is_err(),
            "a changed host name goes unnoticed"
        );
        let mut v1 = kf.clone();
        v1.version = 1;
        assert!(v1.open(b"pw").is_err());
    }

    #[test]
    fn the_append_only_mark_is_authenticated() {
        let master = MasterKey::generate();
        let kf = KeyFile::create(
            &master,
            b"pw",
            cheap(),
            KeyOrigin {
                created: "now".into(),
                hostname: "h".into(),
                username: "u".into(),
            },
            2,
            true,
        )
        .unwrap();
        assert!(kf.to_json().windows(11).any(|w| w == b"append_only"));
        let parsed = KeyFile::from_json(&kf.to_json()).unwrap();
        assert!(parsed.append_only && parsed.open(b"pw").is_ok());
        // Dropping the mark from the file makes the key open nothing.
        let mut freed = parsed.clone();
        freed.append_only = false;
        assert!(freed.open(b"pw").is_err());
        let plain = KeyFile::create(
            &master,
            b"pw",
            cheap(),
            KeyOrigin {
                created: "now".into(),
                hostname: "h".into(),
                username: "u".into(),
            },
            2,
            false,
        )
        .unwrap();
        assert!(!plain.to_json().windows(11).any(|w| w == b"append_only"));
    }

    #[test]
    fn wrap_unwrap() {
        let master = MasterKey::generate();
        let kf = KeyFile::create(
            &master,
            b"secret",
            cheap(),
            KeyOrigin {
                created: "now".into(),
                hostname: "h".into(),
                username: "u".into(),
            },
            1,
            false,
        )
        .unwrap();
        let parsed = KeyFile::from_json(&kf.to_json()).unwrap();
        assert_eq!(
            parsed.open(b"secret").unwrap().as_bytes(),
            master.as_bytes()
        );
        assert!(matches!(
            parsed.open(b"wrong"),
            Err(FormatError::WrongPassword)
        ));
        assert!(!String::from_utf8(kf.to_json()).unwrap().contains("secret"));
    }

    #[test]
    fn costs_outside_the_bounds_are_refused() {
        let master = MasterKey::generate();
        for bad in [
            KdfParams {
                memory_kib: u32::MAX,
                ..KdfParams::MIN
            },
            KdfParams {
                memory_kib: 8,
                ..KdfParams::MIN
            },
            KdfParams {
                iterations: 64,
                ..KdfParams::MIN
            },
            KdfParams {
                parallelism: 16,
                ..KdfParams::MIN
            },
        ] {
            assert!(KeyFile::create(
                &master,
                b"p",
                bad,
                KeyOrigin {
                    created: "".into(),
                    hostname: "".into(),
                    username: "".into()
                },
                2,
                false
            )
            .is_err());
        }
        assert!(KdfParams::default().validate().is_ok());
    }
}
