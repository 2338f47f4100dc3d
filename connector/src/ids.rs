//! Ids for the stanzas the connector sends itself.

/// A fresh id for a stanza the connector sends: a random UUID, written
/// without the formatting machinery `to_string` goes through.
pub fn new_stanza_id() -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut buffer)
        .to_owned()
}
