//! A bare XEP-0114 handshake, to check a server's component listener and
//! secret without the connector.

use std::time::Duration;

use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Result;

/// Opens a component stream for `domain` on `127.0.0.1:port`, answers the
/// handshake with `secret` and returns once the server accepts it (an
/// error says what the server answered otherwise). The link is closed.
pub async fn component_handshake(port: u16, domain: &str, secret: &str) -> Result<()> {
    tokio::time::timeout(Duration::from_secs(10), handshake(port, domain, secret))
        .await
        .map_err(|_| "no handshake answer within 10 s")?
}

async fn handshake(port: u16, domain: &str, secret: &str) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{domain}'>"
    );
    stream.write_all(header.as_bytes()).await?;

    let mut received = String::new();
    let stream_id = loop {
        read_some(&mut stream, &mut received).await?;
        if let Some(id) = stream_id(&received) {
            break id;
        }
        if received.contains("</stream:stream>") {
            return Err(format!("the server closed the stream: {received}").into());
        }
    };
    let digest = Sha1::digest(format!("{stream_id}{secret}").as_bytes());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    stream
        .write_all(format!("<handshake>{hex}</handshake>").as_bytes())
        .await?;

    received.clear();
    loop {
        read_some(&mut stream, &mut received).await?;
        if received.contains("<handshake/>") || received.contains("<handshake></handshake>") {
            let _ = stream.write_all(b"</stream:stream>").await;
            return Ok(());
        }
        if received.contains("stream:error") || received.contains("</stream:stream>") {
            return Err(format!("handshake refused: {received}").into());
        }
    }
}

async fn read_some(stream: &mut TcpStream, into: &mut String) -> Result<()> {
    let mut buffer = [0u8; 4096];
    let read = stream.read(&mut buffer).await?;
    if read == 0 {
        return Err(format!("the server closed the connection after: {into}").into());
    }
    into.push_str(&String::from_utf8_lossy(&buffer[..read]));
    Ok(())
}

/// The `id` attribute of the server's stream header, once it is complete.
fn stream_id(received: &str) -> Option<String> {
    let start = received.find("<stream:stream")?;
    let header = &received[start..];
    let header = &header[..header.find('>')?];
    for quote in ['\'', '"'] {
        let key = format!(" id={quote}");
        if let Some(at) = header.find(&key) {
            let value = &header[at + key.len()..];
            return Some(value[..value.find(quote)?].to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_stream_id_with_either_quote() {
        let header = "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
                      from='bot.localhost' id='abc-1' xmlns:stream='x'>";
        assert_eq!(stream_id(header).as_deref(), Some("abc-1"));
        assert_eq!(
            stream_id("<stream:stream id=\"x2\" from='a'>").as_deref(),
            Some("x2")
        );
        assert_eq!(stream_id("<stream:stream id='x3'"), None);
    }
}
