//! What the end-to-end tests check on stanzas and how they log in, in one
//! place so every transport's tests mean the same thing by "an error".

use crate::{CLIENT_NS, Result, XmppClient, XmppServer};
use minidom::Element;

/// The namespace of stanza error conditions (RFC 6120 §8.3).
pub const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// The password every test user gets.
pub const TEST_PASSWORD: &str = "secret-pw";

/// Registers `user` on `server` and logs in as it with a real client.
pub async fn login(server: &impl XmppServer, user: &str) -> Result<XmppClient> {
    let jid = server.register(user, TEST_PASSWORD).await?;
    XmppClient::connect("127.0.0.1", server.c2s_port(), &jid, TEST_PASSWORD).await
}

/// Asserts a stanza error answering `id`: its type, condition and text
/// (`None`: no `<text/>`).
pub fn assert_stanza_error(
    stanza: &Element,
    id: &str,
    error_type: &str,
    condition: &str,
    text: Option<&str>,
) {
    assert_eq!(stanza.attr("type"), Some("error"), "{stanza:?}");
    assert_eq!(stanza.attr("id"), Some(id), "{stanza:?}");
    let error = stanza
        .get_child("error", CLIENT_NS)
        .unwrap_or_else(|| panic!("no <error/> in {stanza:?}"));
    assert_eq!(error.attr("type"), Some(error_type), "{stanza:?}");
    assert!(
        error.has_child(condition, STANZAS_NS),
        "expected condition {condition} in {stanza:?}"
    );
    let shown = error.get_child("text", STANZAS_NS).map(Element::text);
    assert_eq!(shown.as_deref(), text, "{stanza:?}");
}

/// Asserts the error a user gets when the bot could not be reached or gave
/// no answer in time (DESIGN §2): `cancel/remote-server-timeout`,
/// "Connection failure".
pub fn assert_connection_failure(stanza: &Element, id: &str) {
    assert_stanza_error(
        stanza,
        id,
        "cancel",
        "remote-server-timeout",
        Some("Connection failure"),
    );
}
