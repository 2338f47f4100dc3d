//! Signed requests (DESIGN §9): how a bot at a public URL tells our POSTs
//! from anyone else's.
//!
//! With `COMPONENT_POST_SECRET` set, every POST to a bot carries two headers:
//!
//! ```text
//! X-XMPP-Lambda-Timestamp: 1795640400
//! X-XMPP-Lambda-Signature: v1=<lowercase hex of HMAC-SHA256(secret, "1795640400" + "." + body)>
//! ```
//!
//! The timestamp is inside the signed text, so a captured request cannot be
//! replayed with a fresh timestamp, and a verifier refuses any timestamp more
//! than [`MAX_CLOCK_SKEW_SECS`] away from its own clock, so it cannot be
//! replayed later either. The version prefix lets a later scheme sit beside
//! `v1` without breaking old verifiers.
//!
//! Everything here is pure: the caller passes the time in (as Unix seconds,
//! see [`unix_seconds`]), so every rule is tested with fixed values.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The header carrying the Unix time (seconds) the request was signed at.
pub const TIMESTAMP_HEADER: &str = "X-XMPP-Lambda-Timestamp";

/// The header carrying the signature, `v1=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-XMPP-Lambda-Signature";

/// The one signature scheme this build writes and checks.
pub const SIGNATURE_VERSION: &str = "v1";

/// How far a timestamp may be from the verifier's clock, either way: wide
/// enough for clock drift and a slow request, narrow enough that a captured
/// request is soon useless.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// The shortest secret the connector and the function accept: a short secret
/// can be guessed offline from one captured request.
pub const MIN_SECRET_BYTES: usize = 16;

/// The length of an HMAC-SHA256 tag in bytes.
const MAC_BYTES: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a request's signature was refused. The text is meant for the
/// verifier's log, never for the caller (who gets a bare 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// One of the two headers is absent (or empty).
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but not in its format.
    #[error("malformed header {header}: expected {expected}")]
    MalformedHeader {
        /// Which header.
        header: &'static str,
        /// What it should look like.
        expected: &'static str,
    },
    /// A well-formed signature of a scheme this build does not know, e.g.
    /// `v2=…` from a newer signer.
    #[error("unknown signature version {0:?} in {SIGNATURE_HEADER} (this build checks v1)")]
    UnknownVersion(String),
    /// The timestamp is further in the past than [`MAX_CLOCK_SKEW_SECS`]:
    /// a replay, or a badly wrong clock.
    #[error("stale timestamp: {0} s old (the limit is {MAX_CLOCK_SKEW_SECS} s)")]
    Stale(u64),
    /// The timestamp is further in the future than [`MAX_CLOCK_SKEW_SECS`].
    #[error("timestamp {0} s in the future (the limit is {MAX_CLOCK_SKEW_SECS} s)")]
    Future(u64),
    /// The signature is not the one the secret gives for this timestamp and
    /// body.
    #[error("signature mismatch (wrong secret, or the body or timestamp changed)")]
    Mismatch,
}

const MALFORMED_SIGNATURE: SignatureError = SignatureError::MalformedHeader {
    header: SIGNATURE_HEADER,
    expected: "v1=<64 lowercase hex digits>",
};

const MALFORMED_TIMESTAMP: SignatureError = SignatureError::MalformedHeader {
    header: TIMESTAMP_HEADER,
    expected: "Unix time in seconds (digits only)",
};

/// A `v1` signature: the value of [`SIGNATURE_HEADER`], parsed.
///
/// Parsing and [`Display`](fmt::Display) are exact inverses: only the form
/// the signer writes (lowercase hex) is accepted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    /// The HMAC-SHA256 tag.
    mac: [u8; MAC_BYTES],
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SIGNATURE_VERSION)?;
        f.write_str("=")?;
        for byte in self.mac {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Signature {
    type Err = SignatureError;

    /// Reads `v1=<64 lowercase hex digits>` (surrounding whitespace
    /// ignored). A well-formed version other than `v1` (`v` and up to four
    /// digits) is [`SignatureError::UnknownVersion`]; anything else is
    /// malformed.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (version, hex) = text.trim().split_once('=').ok_or(MALFORMED_SIGNATURE)?;
        let is_version = version.len() >= 2
            && version.len() <= 5
            && version.starts_with('v')
            && version[1..].bytes().all(|b| b.is_ascii_digit());
        if !is_version {
            return Err(MALFORMED_SIGNATURE);
        }
        if version != SIGNATURE_VERSION {
            return Err(SignatureError::UnknownVersion(version.to_owned()));
        }
        decode_hex(hex)
            .map(|mac| Signature { mac })
            .ok_or(MALFORMED_SIGNATURE)
    }
}

/// Lowercase hex of exactly [`MAC_BYTES`] bytes.
fn decode_hex(hex: &str) -> Option<[u8; MAC_BYTES]> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            _ => None,
        }
    }
    let digits = hex.as_bytes();
    if digits.len() != 2 * MAC_BYTES {
        return None;
    }
    let mut mac = [0; MAC_BYTES];
    for (byte, pair) in mac.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(mac)
}

/// Reads the value of [`TIMESTAMP_HEADER`]: Unix seconds, ASCII digits only
/// (surrounding whitespace ignored). Formatting is `u64`'s `to_string`.
pub fn parse_timestamp(text: &str) -> Result<u64, SignatureError> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MALFORMED_TIMESTAMP);
    }
    digits.parse().map_err(|_| MALFORMED_TIMESTAMP)
}

/// Seconds since the Unix epoch at `time` (0 for a clock before 1970): the
/// `now` the verifier and signer take, from `SystemTime::now()`.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Signs requests with one secret, and checks them: one value per secret,
/// a pointer in size, cheap to clone (the key is prepared once and shared),
/// and never shown by `Debug`.
#[derive(Clone)]
pub struct Signer {
    /// HMAC-SHA256 keyed with the secret, copied for every message.
    key: Arc<HmacSha256>,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

impl Signer {
    /// A signer for `secret` (any length; see [`MIN_SECRET_BYTES`] for what
    /// the configuration accepts).
    pub fn new(secret: impl AsRef<[u8]>) -> Signer {
        let key =
            HmacSha256::new_from_slice(secret.as_ref()).expect("HMAC takes a key of any length");
        Signer { key: Arc::new(key) }
    }

    /// The keyed MAC over `timestamp "." body`, ready to finalise.
    fn mac(&self, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::clone(&self.key);
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The signature of `body` sent at `unix_seconds`.
    pub fn signature(&self, unix_seconds: u64, body: &[u8]) -> Signature {
        let tag = self
            .mac(&unix_seconds.to_string(), body)
            .finalize()
            .into_bytes();
        let mut mac = [0; MAC_BYTES];
        mac.copy_from_slice(&tag);
        Signature { mac }
    }

    /// The value of [`SIGNATURE_HEADER`] for `body` sent at `unix_seconds`.
    pub fn sign(&self, unix_seconds: u64, body: &[u8]) -> String {
        self.signature(unix_seconds, body).to_string()
    }

    /// Both headers, name and value, for `body` sent at `unix_seconds`.
    pub fn headers(&self, unix_seconds: u64, body: &[u8]) -> [(&'static str, String); 2] {
        [
            (TIMESTAMP_HEADER, unix_seconds.to_string()),
            (SIGNATURE_HEADER, self.sign(unix_seconds, body)),
        ]
    }

    /// Checks a received request: the values of [`TIMESTAMP_HEADER`] and
    /// [`SIGNATURE_HEADER`] (`None` when absent), the raw body as received,
    /// and the verifier's clock as Unix seconds.
    ///
    /// The headers are read first, then the signature is compared in
    /// constant time, then the timestamp must be within
    /// [`MAX_CLOCK_SKEW_SECS`] of `now`.
    pub fn verify(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<(), SignatureError> {
        let timestamp = present(timestamp, TIMESTAMP_HEADER)?;
        let signature: Signature = present(signature, SIGNATURE_HEADER)?.parse()?;
        let sent_at = parse_timestamp(timestamp)?;
        // `timestamp` is digits only here, exactly the text that was signed.
        self.mac(timestamp, body)
            .verify_slice(&signature.mac)
            .map_err(|_| SignatureError::Mismatch)?;
        if sent_at < now && now - sent_at > MAX_CLOCK_SKEW_SECS {
            return Err(SignatureError::Stale(now - sent_at));
        }
        if sent_at > now && sent_at - now > MAX_CLOCK_SKEW_SECS {
            return Err(SignatureError::Future(sent_at - now));
        }
        Ok(())
    }
}

/// A header's value without surrounding whitespace; an empty one counts as
/// missing.
fn present<'a>(value: Option<&'a str>, header: &'static str) -> Result<&'a str, SignatureError> {
    match value.map(str::trim) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(SignatureError::MissingHeader(header)),
    }
}

/// The value of [`SIGNATURE_HEADER`] for `body` sent at `unix_seconds`.
pub fn sign(secret: impl AsRef<[u8]>, unix_seconds: u64, body: &[u8]) -> String {
    Signer::new(secret).sign(unix_seconds, body)
}

/// Checks a received request in one call; see [`Signer::verify`]. A bot in
/// Rust passes its headers, the raw body and
/// `unix_seconds(SystemTime::now())`, and answers 401 on `Err`.
pub fn verify(
    secret: impl AsRef<[u8]>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(), SignatureError> {
    Signer::new(secret).verify(timestamp, signature, body, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed vectors, each computed independently with Python's standard
    /// library:
    ///
    /// ```python
    /// import hmac, hashlib
    /// "v1=" + hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    /// ```
    const VECTORS: &[(&[u8], u64, &[u8], &str)] = &[
        (
            b"whsec-0123456789abcdef",
            1_795_640_400,
            br#"{"to":"echo@bot.localhost","from":"alice@localhost/phone","kind":"message","stanza":"<message/>","body":"hello"}"#,
            "v1=67fda0c205caed26257b71e4f35a2cbb6dc6b835e6f3fb67b855cd1ce313eccb",
        ),
        (
            b"whsec-0123456789abcdef",
            0,
            b"",
            "v1=d017903ff68dd4133404648a899878f6a6fd896d30532890110d40c72786859c",
        ),
        (
            // "sécret-ключ-🔑-long-enough" as UTF-8
            "s\u{e9}cret-\u{43a}\u{43b}\u{44e}\u{447}-\u{1f511}-long-enough".as_bytes(),
            1_700_000_000,
            "{\"body\":\"\u{fc}ber <&> \u{65e5}\u{672c}\u{8a9e} \u{1f600}\"}".as_bytes(),
            "v1=6a5c3cb6d97c6297585ffb9a44b3e3866950a2444517bfb025e1e8d7fc291d8f",
        ),
        (
            // Longer than SHA-256's 64-byte block: HMAC hashes the key first.
            &[b'k'; 100],
            4_102_444_800,
            b"x",
            "v1=e2bbd0d057753149bb8acbc73e97098682c995bd7ce629fe83fb4e2d5f7ec6b3",
        ),
    ];

    const SECRET: &[u8] = b"whsec-0123456789abcdef";
    const NOW: u64 = 1_795_640_400;
    const BODY: &[u8] = br#"{"body":"hi"}"#;

    fn check(timestamp: Option<&str>, signature: Option<&str>) -> Result<(), SignatureError> {
        verify(SECRET, timestamp, signature, BODY, NOW)
    }

    fn signed_at(at: u64) -> Result<(), SignatureError> {
        check(Some(&at.to_string()), Some(&sign(SECRET, at, BODY)))
    }

    #[test]
    fn signatures_match_pythons_hmac() {
        for (secret, timestamp, body, expected) in VECTORS {
            assert_eq!(sign(secret, *timestamp, body), *expected);
            let signer = Signer::new(secret);
            assert_eq!(signer.signature(*timestamp, body).to_string(), *expected);
            assert_eq!(
                signer.headers(*timestamp, body),
                [
                    (TIMESTAMP_HEADER, timestamp.to_string()),
                    (SIGNATURE_HEADER, (*expected).to_owned())
                ]
            );
            assert_eq!(
                verify(
                    secret,
                    Some(&timestamp.to_string()),
                    Some(expected),
                    body,
                    *timestamp
                ),
                Ok(())
            );
        }
    }

    #[test]
    fn header_names_are_as_designed() {
        assert_eq!(TIMESTAMP_HEADER, "X-XMPP-Lambda-Timestamp");
        assert_eq!(SIGNATURE_HEADER, "X-XMPP-Lambda-Signature");
    }

    #[test]
    fn signature_parse_format_round_trips() {
        for (_, _, _, text) in VECTORS {
            let parsed: Signature = text.parse().expect("a signer's signature parses");
            assert_eq!(parsed.to_string(), *text);
            assert_eq!(parsed.to_string().parse::<Signature>(), Ok(parsed));
        }
        let signature = Signer::new(SECRET).signature(NOW, BODY);
        assert_eq!(signature.to_string().parse::<Signature>(), Ok(signature));
        assert_eq!(
            format!("{signature:?}"),
            format!("Signature({signature})"),
            "Debug shows the header value"
        );
        // Whitespace around a header value is not part of it.
        let padded = format!(" {signature}\t");
        assert_eq!(padded.parse::<Signature>(), Ok(signature));
    }

    #[test]
    fn timestamp_parse_format_round_trips() {
        for at in [0, 1, NOW, u64::MAX] {
            assert_eq!(parse_timestamp(&at.to_string()), Ok(at));
        }
        assert_eq!(parse_timestamp(" 1795640400 "), Ok(NOW));
        assert_eq!(parse_timestamp("0001795640400"), Ok(NOW));
    }

    #[test]
    fn a_good_signature_within_the_window_is_accepted() {
        assert_eq!(signed_at(NOW), Ok(()));
        assert_eq!(signed_at(NOW - MAX_CLOCK_SKEW_SECS), Ok(()));
        assert_eq!(signed_at(NOW + MAX_CLOCK_SKEW_SECS), Ok(()));
    }

    #[test]
    fn every_refusal_has_its_exact_text() {
        let good_signature = sign(SECRET, NOW, BODY);
        let now = NOW.to_string();
        let cases: Vec<(Result<(), SignatureError>, &str)> = vec![
            (
                check(None, Some(&good_signature)),
                "missing header X-XMPP-Lambda-Timestamp",
            ),
            (
                check(Some("  "), Some(&good_signature)),
                "missing header X-XMPP-Lambda-Timestamp",
            ),
            (
                check(Some(&now), None),
                "missing header X-XMPP-Lambda-Signature",
            ),
            (
                check(Some(&now), Some("")),
                "missing header X-XMPP-Lambda-Signature",
            ),
            (
                check(Some("yesterday"), Some(&good_signature)),
                "malformed header X-XMPP-Lambda-Timestamp: expected Unix time in seconds (digits only)",
            ),
            (
                check(Some("-5"), Some(&good_signature)),
                "malformed header X-XMPP-Lambda-Timestamp: expected Unix time in seconds (digits only)",
            ),
            (
                check(Some("1795640400.5"), Some(&good_signature)),
                "malformed header X-XMPP-Lambda-Timestamp: expected Unix time in seconds (digits only)",
            ),
            (
                check(Some("99999999999999999999999"), Some(&good_signature)),
                "malformed header X-XMPP-Lambda-Timestamp: expected Unix time in seconds (digits only)",
            ),
            (
                check(Some(&now), Some("sha256=abc")),
                "malformed header X-XMPP-Lambda-Signature: expected v1=<64 lowercase hex digits>",
            ),
            (
                check(Some(&now), Some(good_signature.trim_start_matches("v1="))),
                "malformed header X-XMPP-Lambda-Signature: expected v1=<64 lowercase hex digits>",
            ),
            (
                check(
                    Some(&now),
                    Some(&good_signature.to_uppercase().replacen('V', "v", 1)),
                ),
                "malformed header X-XMPP-Lambda-Signature: expected v1=<64 lowercase hex digits>",
            ),
            (
                check(
                    Some(&now),
                    Some(&good_signature[..good_signature.len() - 2]),
                ),
                "malformed header X-XMPP-Lambda-Signature: expected v1=<64 lowercase hex digits>",
            ),
            (
                check(
                    Some(&now),
                    Some(&format!("{good_signature},{good_signature}")),
                ),
                "malformed header X-XMPP-Lambda-Signature: expected v1=<64 lowercase hex digits>",
            ),
            (
                check(Some(&now), Some(&good_signature.replacen("v1=", "v2=", 1))),
                r#"unknown signature version "v2" in X-XMPP-Lambda-Signature (this build checks v1)"#,
            ),
            (
                check(Some(&now), Some("v10=00")),
                r#"unknown signature version "v10" in X-XMPP-Lambda-Signature (this build checks v1)"#,
            ),
            (
                signed_at(NOW - MAX_CLOCK_SKEW_SECS - 1),
                "stale timestamp: 301 s old (the limit is 300 s)",
            ),
            (
                signed_at(0),
                "stale timestamp: 1795640400 s old (the limit is 300 s)",
            ),
            (
                signed_at(NOW + MAX_CLOCK_SKEW_SECS + 1),
                "timestamp 301 s in the future (the limit is 300 s)",
            ),
            (
                verify(
                    b"another secret, same length",
                    Some(&now),
                    Some(&good_signature),
                    BODY,
                    NOW,
                ),
                "signature mismatch (wrong secret, or the body or timestamp changed)",
            ),
            (
                verify(
                    SECRET,
                    Some(&now),
                    Some(&good_signature),
                    br#"{"body":"hi!"}"#,
                    NOW,
                ),
                "signature mismatch (wrong secret, or the body or timestamp changed)",
            ),
            (
                check(Some(&(NOW - 1).to_string()), Some(&good_signature)),
                "signature mismatch (wrong secret, or the body or timestamp changed)",
            ),
        ];
        for (outcome, expected) in cases {
            match outcome {
                Err(error) => assert_eq!(error.to_string(), expected),
                Ok(()) => panic!("accepted, expected: {expected}"),
            }
        }
    }

    #[test]
    fn a_replayed_signature_is_refused_even_with_the_right_secret() {
        // The signature is right, only the clock moved on.
        let at = NOW - 3600;
        let outcome = verify(
            SECRET,
            Some(&at.to_string()),
            Some(&sign(SECRET, at, BODY)),
            BODY,
            NOW,
        );
        assert_eq!(outcome, Err(SignatureError::Stale(3600)));
    }

    #[test]
    fn unix_seconds_of_a_clock() {
        assert_eq!(unix_seconds(UNIX_EPOCH), 0);
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_795_640_400_999);
        assert_eq!(unix_seconds(at), NOW);
        assert_eq!(
            unix_seconds(UNIX_EPOCH - std::time::Duration::from_secs(5)),
            0
        );
    }

    #[test]
    fn a_signer_is_small() {
        assert_eq!(std::mem::size_of::<Signer>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let signer = Signer::new("correct horse battery staple");
        let shown = format!("{signer:?} {:?}", Some(signer.clone()));
        assert!(!shown.contains("horse"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
