//! Schedules: an EventBridge rule, EventBridge Scheduler or a direct invoke
//! wakes the bot ([`Bot::on_event`]) so that it can speak first; its
//! messages go to the reply queue as send envelopes.

use crate::bot::{Bot, Event, ScheduleEvent};
use crate::error::HandlerError;
use crate::event::schedule_event;
use crate::reply_target::ReplyTarget;
use serde_json::{Value, json};

/// Hands a schedule event to the bot and queues what it sends; answers
/// `{"envelopes": [ids]}`.
pub(crate) async fn handle<B: Bot>(
    bot: &B,
    target: &ReplyTarget,
    event: Value,
) -> Result<Value, HandlerError> {
    let schedule = schedule_event(event).map_err(HandlerError::InvalidScheduleEvent)?;
    let key = occurrence_key(&schedule);
    tracing::info!(
        schedule = schedule.name.as_deref().unwrap_or(""),
        time = schedule.time.as_deref().unwrap_or(""),
        "schedule fired"
    );
    let messages = bot.on_event(&Event::Schedule(schedule)).await;
    if messages.is_empty() {
        return Ok(json!({ "envelopes": [] }));
    }
    let outbox = target.outbox().await?;
    // Lambda retries a failed asynchronous invocation (and Scheduler one
    // it could not deliver) with the same event: ids derived from the
    // occurrence make the retry's envelopes repeats the connector drops.
    let envelopes = match key {
        Some(key) => outbox.send_all_once(&key, messages).await?,
        None => outbox.send_all(messages).await?,
    };
    Ok(json!({ "envelopes": envelopes }))
}

/// What names one firing of a schedule: its name and the time it was due
/// (Scheduler's `<aws.scheduler.scheduled-time>`, an EventBridge event's
/// `time`). `None` when the event lacks either, or carries the placeholder
/// itself (an input copied by hand): then every invocation is its own.
fn occurrence_key(schedule: &ScheduleEvent) -> Option<String> {
    let name = schedule.name.as_deref()?;
    let time = schedule
        .time
        .as_deref()
        .filter(|time| !time.contains('<'))?;
    Some(format!("schedule\n{name}\n{time}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(name: Option<&str>, time: Option<&str>) -> ScheduleEvent {
        ScheduleEvent {
            name: name.map(str::to_owned),
            time: time.map(str::to_owned),
            payload: Value::Null,
        }
    }

    #[test]
    fn an_occurrence_is_its_name_and_scheduled_time() {
        assert_eq!(
            occurrence_key(&schedule(Some("daily"), Some("2026-12-24T08:00:00Z"))).as_deref(),
            Some("schedule\ndaily\n2026-12-24T08:00:00Z")
        );
        assert_eq!(occurrence_key(&schedule(Some("daily"), None)), None);
        assert_eq!(
            occurrence_key(&schedule(None, Some("2026-12-24T08:00:00Z"))),
            None
        );
        assert_eq!(
            occurrence_key(&schedule(
                Some("daily"),
                Some("<aws.scheduler.scheduled-time>")
            )),
            None
        );
    }
}
