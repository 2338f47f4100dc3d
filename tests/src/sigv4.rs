//! An independent AWS Signature Version 4 checker for requests a
//! [`crate::BotServer`] received, written from AWS's description of the
//! algorithm (canonical request, string to sign, HMAC-SHA256 key
//! derivation) and sharing no code with the connector's signer, so a test
//! can tell whether the connector signs the way AWS checks.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::BotRequest;

/// The only algorithm SigV4 header signatures use.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What the server knows about the caller, as AWS would.
#[derive(Debug, Clone)]
pub struct SigV4Key {
    /// The access key id the request must name.
    pub access_key_id: String,
    /// The secret that signs.
    pub secret_access_key: String,
    /// The session token the request must carry (and sign), if any.
    pub session_token: Option<String>,
    /// The region the request must be signed for.
    pub region: String,
    /// The signing name, e.g. `lambda`.
    pub service: String,
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key id of the credential scope.
    pub access_key_id: String,
    /// `YYYYMMDD` of the credential scope.
    pub date: String,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope.
    pub service: String,
    /// Lower-case header names, in the header's order.
    pub signed_headers: Vec<String>,
    /// The hex signature.
    pub signature: String,
}

/// Parses the `Authorization` header's value.
pub fn parse_authorization(value: &str) -> Result<Authorization, String> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(|| format!("not a {ALGORITHM} authorization: {value:?}"))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(format!("unexpected authorization part {part:?}")),
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(format!("bad credential scope {credential:?}"));
    };
    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed_headers
            .ok_or("no SignedHeaders")?
            .split(';')
            .map(str::to_owned)
            .collect(),
        signature: signature.ok_or("no Signature")?.to_owned(),
    })
}

/// Checks the request's SigV4 signature against `key`: the credential scope,
/// the signed headers (`host` and `x-amz-date` always, the session token
/// when one is expected), an `x-amz-content-sha256` that matches the body,
/// and the signature recomputed over method, path, query, signed headers
/// and the body's hash. `Err` says what is wrong.
pub fn verify(request: &BotRequest, key: &SigV4Key) -> Result<(), String> {
    let authorization = request
        .header("authorization")
        .ok_or("no Authorization header")?;
    let auth = parse_authorization(authorization)?;
    if auth.access_key_id != key.access_key_id {
        return Err(format!("unknown access key {:?}", auth.access_key_id));
    }
    if auth.region != key.region || auth.service != key.service {
        return Err(format!(
            "signed for {}/{}, expected {}/{}",
            auth.region, auth.service, key.region, key.service
        ));
    }
    let amz_date = request.header("x-amz-date").ok_or("no x-amz-date header")?;
    if !amz_date.starts_with(&auth.date) {
        return Err(format!(
            "x-amz-date {amz_date} is not on the scope's date {}",
            auth.date
        ));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|name| name == required) {
            return Err(format!("{required} is not signed"));
        }
    }
    match (&key.session_token, request.header("x-amz-security-token")) {
        (None, None) => {}
        (Some(expected), Some(sent)) if expected == sent => {
            if !auth
                .signed_headers
                .iter()
                .any(|name| name == "x-amz-security-token")
            {
                return Err("x-amz-security-token is not signed".into());
            }
        }
        (expected, sent) => {
            return Err(format!(
                "session token {sent:?} sent, {expected:?} expected"
            ));
        }
    }
    let body_hash = hex(&Sha256::digest(&request.body));
    if let Some(declared) = request.header("x-amz-content-sha256")
        && declared != body_hash
    {
        return Err(format!(
            "x-amz-content-sha256 {declared} does not match the body's {body_hash}"
        ));
    }
    let canonical = canonical_request(request, &auth.signed_headers, &body_hash)?;
    let to_sign = string_to_sign(amz_date, &auth, &canonical);
    let expected = signature(
        &key.secret_access_key,
        &auth.date,
        &key.region,
        &key.service,
        &to_sign,
    );
    if expected == auth.signature {
        Ok(())
    } else {
        Err(format!(
            "signature mismatch: computed {expected}, got {}; canonical request:\n{canonical}",
            auth.signature
        ))
    }
}

/// The canonical request: method, canonical URI, canonical query, the
/// signed headers with their values, their names, and the payload hash.
pub fn canonical_request(
    request: &BotRequest,
    signed_headers: &[String],
    payload_hash: &str,
) -> Result<String, String> {
    let (path, query) = request
        .path
        .split_once('?')
        .unwrap_or((request.path.as_str(), ""));
    let mut lines = vec![
        request.method.clone(),
        canonical_uri(path),
        canonical_query(query),
    ];
    for name in signed_headers {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| collapse_spaces(value))
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        lines.push(format!("{name}:{}", values.join(",")));
    }
    lines.push(String::new());
    lines.push(signed_headers.join(";"));
    lines.push(payload_hash.to_owned());
    Ok(lines.join("\n"))
}

/// `AWS4-HMAC-SHA256`, the request time, the credential scope and the
/// canonical request's hash, one per line.
pub fn string_to_sign(amz_date: &str, auth: &Authorization, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{}/{}/{}/aws4_request\n{}",
        auth.date,
        auth.region,
        auth.service,
        hex(&Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The hex signature: the signing key is derived from the secret by
/// HMAC-SHA256 over the date, region, service and `aws4_request` in turn.
pub fn signature(
    secret_access_key: &str,
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> String {
    let k_date = hmac_sha256(format!("AWS4{secret_access_key}").as_bytes(), date);
    let k_region = hmac_sha256(&k_date, region);
    let k_service = hmac_sha256(&k_region, service);
    let k_signing = hmac_sha256(&k_service, "aws4_request");
    hex(&hmac_sha256(&k_signing, string_to_sign))
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Every service but S3 signs the path percent-encoded once more than it
/// was sent (`%20` → `%2520`); an empty path is `/`.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    uri_encode(path.as_bytes(), false)
}

/// Parameters decoded, re-encoded strictly and sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(name), true),
                uri_encode(&percent_decode(value), true),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Leaves `A-Z a-z 0-9 - _ . ~` (and `/` unless `encode_slash`), encodes
/// every other byte as `%XX` with upper-case hex.
fn uri_encode(bytes: &[u8], encode_slash: bool) -> String {
    let mut encoded = String::new();
    for &byte in bytes {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'.' | b'~')
            || (byte == b'/' && !encode_slash)
        {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex_pair = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex_pair) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    decoded
}

/// Header values are trimmed and runs of spaces become one.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}
