//! Making a link: the TCP connection, the stream headers and the XEP-0114
//! handshake, each bounded in time.

use crate::errors::{LinkError, StreamError};
use crate::settings::LinkSettings;
use crate::stream::{ComponentStream, Read, ReadTimeouts};
use minidom::Element;
use sha1::{Digest, Sha1};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::debug;
use xmpp_lambda_shared::COMPONENT_NS;

/// How long one TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the stream header exchange and handshake may take, however
/// slowly the server's bytes come.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Connects, opens the stream and authenticates.
pub async fn connect(settings: &LinkSettings) -> Result<ComponentStream, LinkError> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host(&settings.server)
        .await
        .map_err(|source| LinkError::Resolve {
            server: settings.server.clone(),
            source,
        })?
        .collect();
    let mut last_error = LinkError::NoAddress {
        server: settings.server.clone(),
    };
    for addr in addresses {
        let tcp = match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => {
                last_error = LinkError::Connect { addr, source };
                continue;
            }
            Err(_) => {
                last_error = LinkError::Connect {
                    addr,
                    source: io::ErrorKind::TimedOut.into(),
                };
                continue;
            }
        };
        // Stanzas are small and latency matters more than packet count.
        tcp.set_nodelay(true)?;
        debug!(%addr, "connected, opening the component stream");
        return timeout(HANDSHAKE_TIMEOUT, handshake(tcp, settings))
            .await
            .unwrap_or(Err(LinkError::TimedOut("waiting for the handshake")));
    }
    Err(last_error)
}

/// Opens the component stream and performs the XEP-0114 handshake (also
/// used by `check`, which closes the link again at once).
pub async fn handshake(
    tcp: TcpStream,
    settings: &LinkSettings,
) -> Result<ComponentStream, LinkError> {
    let timeouts = ReadTimeouts {
        // Without traffic for two ping intervals something is wrong: ping
        // once more and give the server one interval to answer.
        silence: settings.ping_interval * 2,
        answer: settings.ping_interval.max(Duration::from_secs(5)),
    };
    let (mut stream, stream_id) = ComponentStream::open(tcp, &settings.domain, timeouts).await?;
    // XEP-0114 streams have no features: the handshake comes right away.
    let Some(stream_id) = stream_id else {
        // A server refusing the stream may omit the id and say why next.
        let element = next_element(&mut stream).await?;
        return Err(match StreamError::from_element(&element) {
            Some(error) => LinkError::Rejected(error),
            None => LinkError::NoStreamId,
        });
    };
    let digest = handshake_digest(&stream_id, settings.secret.expose());
    stream.queue_text(&format!("<handshake>{digest}</handshake>"));
    stream.flush().await?;
    let element = next_element(&mut stream).await?;
    if element.is("handshake", COMPONENT_NS) {
        return Ok(stream);
    }
    match StreamError::from_element(&element) {
        Some(error) => Err(LinkError::Rejected(error)),
        None => Err(LinkError::UnexpectedElement(element.name().to_owned())),
    }
}

/// The next element during the handshake.
async fn next_element(stream: &mut ComponentStream) -> Result<Element, LinkError> {
    loop {
        match stream.next().await? {
            Read::Element(element) => return Ok(element),
            Read::Skipped { head, oversize } => {
                let name = head.as_ref().map_or("a stanza", |head| head.name());
                return Err(LinkError::UnexpectedElement(format!("{name}, {oversize},")));
            }
            Read::Silent => continue,
            Read::Closed => return Err(LinkError::Closed),
        }
    }
}

/// The handshake's content (XEP-0114 §3): the SHA-1 of the stream id and
/// the secret, in lower-case hex.
fn handshake_digest(stream_id: &str, secret: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(stream_id.as_bytes());
    sha1.update(secret.as_bytes());
    sha1.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SHA-1 of `3BF96D32sharedsecret`, as `sha1sum` gives it.
    #[test]
    fn the_digest_is_the_sha1_of_id_and_secret_in_hex() {
        assert_eq!(
            handshake_digest("3BF96D32", "sharedsecret"),
            "3b6c216d9b55a7b4f3e82ab3e10cb81569f115d4"
        );
    }
}
