//! Telling the triggers apart: every event arrives as JSON, and its shape
//! says where it came from.

use serde_json::Value;

/// The kinds of event the function answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventShape {
    /// A Function URL (HTTP payload 2.0) request: `requestContext.http`.
    FunctionUrl,
    /// An SQS event source batch: `Records` from `aws:sqs`.
    Sqs,
    /// A request JSON given directly (`aws lambda invoke`): `to`, `from`,
    /// `kind`, `stanza`.
    Request,
}

/// The keys every request JSON has (DESIGN §1).
const REQUEST_KEYS: [&str; 4] = ["to", "from", "kind", "stanza"];

/// How many keys of an unknown event an error names.
const KEYS_SHOWN: usize = 8;

/// Names the event's shape, or says what was received instead.
pub(crate) fn classify(event: &Value) -> Result<EventShape, String> {
    let Some(object) = event.as_object() else {
        return Err(format!(
            "the event is {}, not a JSON object",
            json_type(event)
        ));
    };
    if let Some(records) = object.get("Records") {
        let Some(records) = records.as_array() else {
            return Err(format!(
                "\"Records\" is {}, not an array",
                json_type(records)
            ));
        };
        // Other AWS services (S3, SNS, DynamoDB) also send `Records`.
        for record in records {
            let source = record
                .get("eventSource")
                .or_else(|| record.get("EventSource"));
            if let Some(source) = source.and_then(Value::as_str)
                && source != "aws:sqs"
            {
                return Err(format!(
                    "Records from {source:?} are not supported (only aws:sqs)"
                ));
            }
        }
        return Ok(EventShape::Sqs);
    }
    if object
        .get("requestContext")
        .is_some_and(|context| context.get("http").is_some())
    {
        return Ok(EventShape::FunctionUrl);
    }
    if REQUEST_KEYS.iter().all(|key| object.contains_key(*key)) {
        return Ok(EventShape::Request);
    }
    let mut keys: Vec<&str> = object.keys().map(String::as_str).take(KEYS_SHOWN).collect();
    if object.len() > KEYS_SHOWN {
        keys.push("…");
    }
    Err(format!("got an object with keys [{}]", keys.join(", ")))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_are_told_apart() {
        assert_eq!(
            classify(&json!({"Records": [{"eventSource": "aws:sqs"}]})),
            Ok(EventShape::Sqs)
        );
        assert_eq!(classify(&json!({"Records": []})), Ok(EventShape::Sqs));
        assert_eq!(
            classify(&json!({"version": "2.0", "requestContext": {"http": {"method": "POST"}}})),
            Ok(EventShape::FunctionUrl)
        );
        assert_eq!(
            classify(&json!({"to": "a", "from": "b", "kind": "message", "stanza": "<message/>"})),
            Ok(EventShape::Request)
        );
    }

    #[test]
    fn other_shapes_are_described() {
        assert_eq!(
            classify(&json!("hi")),
            Err("the event is a string, not a JSON object".into())
        );
        assert_eq!(
            classify(&json!({"Records": [{"eventSource": "aws:s3"}]})),
            Err(r#"Records from "aws:s3" are not supported (only aws:sqs)"#.into())
        );
        assert_eq!(
            classify(&json!({"Records": {}})),
            Err(r#""Records" is an object, not an array"#.into())
        );
        assert_eq!(
            classify(&json!({"to": "a", "body": "hi"})),
            Err("got an object with keys [body, to]".into())
        );
    }
}
