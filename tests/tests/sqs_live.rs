//! Live conversations and streamed answers over the sqs transport (DESIGN
//! §10, §11): a real client, Prosody, the connector with `TRANSPORT=sqs`,
//! moto's SQS server, and the function (`BOT=proxy`) under cargo lambda's
//! emulator with the local SQS trigger, in front of a slow HTTP bot; and a
//! streamed answer's parts put on the reply queue out of order.

use std::time::Duration;

use minidom::Element;
use serde_json::json;
use tokio::time::Instant;
use xmpp_lambda_shared::{BotResponse, RequestEnvelope};
use xmpp_lambda_tests::{
    BotRequest, BotServer, Connector, Moto, Prosody, QueueConsumer, Result, XmppClient, XmppServer,
    body_of, echo_reply, login,
};

const WAIT: Duration = Duration::from_secs(20);
const LINK_UP: &str = "component link established";
const CHAT_STATES: &str = "http://jabber.org/protocol/chatstates";
const RECEIPTS: &str = "urn:xmpp:receipts";

/// Moto with a request and a reply queue, the connector on them, and alice.
struct Rig {
    prosody: Prosody,
    moto: Moto,
    replies: String,
    /// Kept for their `Drop`.
    _connector: Connector,
    _consumer: Option<QueueConsumer>,
    alice: XmppClient,
}

impl Rig {
    /// With the function proxying to `bot`, or without any consumer.
    async fn start(bot: Option<&BotServer>) -> Result<Rig> {
        let prosody = Prosody::start().await?;
        let moto = Moto::start().await?;
        let requests = moto
            .create_queue_with("requests", &[("VisibilityTimeout", "30")])
            .await?;
        let replies = moto
            .create_queue_with("replies", &[("VisibilityTimeout", "5")])
            .await?;
        let consumer = match bot {
            Some(bot) => {
                let url = bot.url();
                let env = [("BOT", "proxy"), ("COMPONENT_POST_URL", url.as_str())];
                Some(QueueConsumer::start(&moto, &requests, &replies, &env).await?)
            }
            None => None,
        };
        let env = moto.sqs_transport_env(&requests, &replies);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let connector = Connector::start_for(&prosody, &env).await?;
        connector.wait_for_log(LINK_UP, WAIT).await?;
        let alice = login(&prosody, "alice").await?;
        Ok(Rig {
            prosody,
            moto,
            replies,
            _connector: connector,
            _consumer: consumer,
            alice,
        })
    }

    fn bot_jid(&self) -> String {
        format!("echo@{}", self.prosody.component_domain())
    }
}

/// Every message alice gets within `within`, with when it came.
async fn messages_for(alice: &mut XmppClient, within: Duration) -> Vec<(Element, Duration)> {
    let started = Instant::now();
    let mut got = Vec::new();
    while let Some(message) = alice
        .recv_message(within.saturating_sub(started.elapsed()))
        .await
    {
        got.push((message, started.elapsed()));
    }
    got
}

#[tokio::test]
async fn the_receipt_comes_once_queued_and_typing_until_the_reply_envelope() -> Result<()> {
    let bot = BotServer::start(|request: BotRequest| async move {
        echo_reply(&request.json).with_delay(Duration::from_millis(2500))
    })
    .await?;
    let mut rig = Rig::start(Some(&bot)).await?;
    let to = rig.bot_jid();
    rig.alice
        .send(&format!(
            "<message to='{to}' type='chat' id='q1'><body>hello</body>\
             <active xmlns='{CHAT_STATES}'/><request xmlns='{RECEIPTS}'/></message>"
        ))
        .await?;
    let got = messages_for(&mut rig.alice, Duration::from_secs(8)).await;
    let at = |what: &dyn Fn(&Element) -> bool| got.iter().find(|(m, _)| what(m)).map(|(_, t)| *t);
    let receipt = at(&|m| {
        m.get_child("received", RECEIPTS)
            .is_some_and(|r| r.attr("id") == Some("q1"))
    })
    .ok_or_else(|| format!("no receipt: {got:?}"))?;
    let composing = at(&|m| m.get_child("composing", CHAT_STATES).is_some())
        .ok_or_else(|| format!("no typing: {got:?}"))?;
    let reply = got
        .iter()
        .find(|(m, _)| body_of(m).is_some())
        .ok_or_else(|| format!("no reply: {got:?}"))?;
    // On the queue within a moment: long before the bot has answered.
    assert!(
        receipt < Duration::from_millis(1500),
        "receipt after {receipt:?}"
    );
    assert!(
        composing >= Duration::from_millis(300) && composing < Duration::from_millis(2000),
        "typing after {composing:?}"
    );
    assert_eq!(body_of(&reply.0).as_deref(), Some("Did you say hello?"));
    assert!(reply.1 > composing, "typing before the reply");
    assert!(
        reply.0.get_child("active", CHAT_STATES).is_some(),
        "the reply ends typing: {:?}",
        reply.0
    );
    Ok(())
}

#[tokio::test]
async fn a_streamed_answers_parts_are_applied_in_order_and_once() -> Result<()> {
    let mut rig = Rig::start(None).await?;
    let to = rig.bot_jid();
    // The request alice's message would have been, answered in parts that
    // reach the reply queue out of order, one of them twice.
    let request = xmpp_lambda_shared::Request {
        id: Some("s1".into()),
        ..xmpp_lambda_shared::Request::chat(rig.alice.full_jid(), &to, "tell me")
    };
    let envelope = RequestEnvelope::new("stream-1", request);
    let line = |seq: u64, body: &str| {
        let json = json!({ "body": body }).to_string();
        envelope
            .reply_part(BotResponse::json(json), seq, false)
            .to_json()
    };
    let end = envelope
        .reply_part(BotResponse::from_http(204, None, b""), 3, true)
        .to_json();
    for body in [
        line(0, "one"),
        line(2, "three"),
        line(0, "one"),
        line(1, "two"),
        end,
    ] {
        rig.moto.send_message(&rig.replies, &body, None).await?;
    }
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        let message = rig.alice.expect_message("a streamed line", WAIT).await?;
        bodies.extend(body_of(&message));
    }
    assert_eq!(bodies, vec!["one", "two", "three"]);
    // Nothing is said twice, and every part was deleted.
    assert!(
        messages_for(&mut rig.alice, Duration::from_secs(2))
            .await
            .iter()
            .all(|(m, _)| body_of(m).is_none()),
        "a line came twice"
    );
    rig.moto.wait_depth(&rig.replies, 0, WAIT).await?;
    Ok(())
}
