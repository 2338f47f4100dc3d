//! Why a link could not be made, or was lost.

use crate::xml::STREAMS_NS;
use minidom::Element;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// The namespace of stream error conditions (RFC 6120 §4.9.3).
const STREAM_ERRORS_NS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// A `<stream:error>` from the server: its defined condition and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// The RFC 6120 condition, e.g. `conflict` or `not-authorized`.
    pub condition: String,
    /// The server's explanation, if it gave one.
    pub text: Option<String>,
}

impl StreamError {
    /// The stream error in `element`, if it is one.
    pub fn from_element(element: &Element) -> Option<StreamError> {
        if !element.is("error", STREAMS_NS) {
            return None;
        }
        let in_errors_ns = || element.children().filter(|c| c.ns() == STREAM_ERRORS_NS);
        let condition = in_errors_ns()
            .find(|c| c.name() != "text")
            .map(|c| c.name().to_owned())
            .unwrap_or_else(|| "undefined-condition".to_owned());
        let text = in_errors_ns()
            .find(|c| c.name() == "text")
            .map(Element::text);
        Some(StreamError { condition, text })
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.condition)?;
        if let Some(text) = &self.text {
            write!(f, " ({text})")?;
        }
        Ok(())
    }
}

/// Why a connection attempt failed or an established link was lost.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot resolve {server}: {source}")]
    Resolve { server: String, source: io::Error },
    #[error("{server} resolves to no address")]
    NoAddress { server: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("server rejected the handshake: {0}")]
    Rejected(StreamError),
    #[error("server sent a stream error: {0}")]
    ServerStreamError(StreamError),
    #[error("server sent no stream id")]
    NoStreamId,
    #[error("server sent <{0}> instead of a handshake answer")]
    UnexpectedElement(String),
    #[error("server closed the stream")]
    Closed,
    #[error("timed out {0}")]
    TimedOut(&'static str),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(xml: &str) -> Element {
        xml.parse().expect("test XML is valid")
    }

    #[test]
    fn stream_error_condition_and_text() {
        let error = StreamError::from_element(&element(
            "<stream:error xmlns:stream='http://etherx.jabber.org/streams'>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Component already connected</text>\
             </stream:error>",
        ))
        .expect("a stream error");
        assert_eq!(error.condition, "conflict");
        assert_eq!(error.text.as_deref(), Some("Component already connected"));
        assert_eq!(error.to_string(), "conflict (Component already connected)");
    }

    #[test]
    fn stream_error_without_text() {
        let error = StreamError::from_element(&element(
            "<error xmlns='http://etherx.jabber.org/streams'>\
             <host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>",
        ))
        .expect("a stream error");
        assert_eq!(error.to_string(), "host-unknown");
        assert!(
            StreamError::from_element(&element("<error xmlns='jabber:component:accept'/>"))
                .is_none()
        );
    }
}
