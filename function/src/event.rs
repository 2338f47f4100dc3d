//! Telling the triggers apart: every event arrives as JSON, and its shape
//! says where it came from.

use crate::bot::ScheduleEvent;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
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
    /// A schedule: an EventBridge event (`detail-type` and `source`), or
    /// `{"schedule": NAME, …}` from EventBridge Scheduler or a direct invoke.
    Schedule,
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
    if object.contains_key("schedule")
        || (object.contains_key("detail-type") && object.contains_key("source"))
    {
        return Ok(EventShape::Schedule);
    }
    let mut keys: Vec<&str> = object.keys().map(String::as_str).take(KEYS_SHOWN).collect();
    if object.len() > KEYS_SHOWN {
        keys.push("…");
    }
    Err(format!("got an object with keys [{}]", keys.join(", ")))
}

/// Reads a schedule event (see [`EventShape::Schedule`]).
pub(crate) fn schedule_event(event: Value) -> Result<ScheduleEvent, String> {
    if let Some(name) = event.get("schedule") {
        let Some(name) = name.as_str() else {
            return Err(format!("\"schedule\" is {}, not a string", json_type(name)));
        };
        return Ok(ScheduleEvent {
            name: Some(name.to_owned()),
            time: event.get("time").and_then(Value::as_str).map(str::to_owned),
            payload: event,
        });
    }
    let parsed: EventBridgeEvent = serde_json::from_value(event.clone())
        .map_err(|error| format!("not an EventBridge event: {error}"))?;
    // A rule's ARN ends in `rule/NAME` (or `rule/BUS/NAME`).
    let name = parsed
        .resources
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|arn| arn.rsplit_once(":rule/").map(|(_, rule)| rule))
        .map(|rule| rule.rsplit('/').next().unwrap_or(rule).to_owned());
    Ok(ScheduleEvent {
        name,
        time: parsed.time.map(|time| time.to_rfc3339()),
        payload: event,
    })
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
    fn schedules_are_told_apart_and_named() {
        let rule = json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
            "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-29T08:00:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:123456789012:rule/daily-reminder"],
            "detail": {}
        });
        assert_eq!(classify(&rule), Ok(EventShape::Schedule));
        let event = schedule_event(rule).expect("an EventBridge event");
        assert_eq!(event.name.as_deref(), Some("daily-reminder"));
        assert_eq!(event.time.as_deref(), Some("2026-11-29T08:00:00+00:00"));

        let direct = json!({"schedule": "digest"});
        assert_eq!(classify(&direct), Ok(EventShape::Schedule));
        let event = schedule_event(direct).expect("a schedule");
        assert_eq!(event.name.as_deref(), Some("digest"));
        assert_eq!(event.time, None);

        assert_eq!(
            schedule_event(json!({"schedule": 5})).unwrap_err(),
            "\"schedule\" is a number, not a string"
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
