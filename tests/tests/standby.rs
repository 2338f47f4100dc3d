//! Two connectors for one component, as an operator runs them on two hosts
//! with the same options: real Prosody and ejabberd, the connector binary
//! twice, real HTTP echo bots, slixmpp users, and for the sqs transport
//! moto with the function under cargo lambda and the local trigger.
//!
//! - Prosody refuses the second link with `conflict`: the second connector
//!   is a hot standby. It waits quietly (one log line, `/readyz` 503
//!   "standby") and takes over once the first is killed or stopped.
//! - ejabberd accepts both links and shares the component's stanzas
//!   between them (active-active): both serve, and when one dies the other
//!   serves everything.
//!
//! The takeover tests run a steady load of 50 messages a second, stop the
//! active connector under it (SIGKILL or SIGTERM) and account for every
//! message: replied, answered with an error, or never answered. XEP-0114
//! has no acknowledgements, so what a killed connector had read but not
//! yet answered (http) or not yet queued (sqs) is gone; the tests assert
//! that only such in-flight messages go unanswered and that nothing queued
//! is lost. A SIGTERM answers what is in flight and refuses what comes
//! next with a `wait` error; the only stanzas it cannot answer are those
//! the server routes to the link in the moment it closes, and the tests
//! assert that the connector names each in its log. They print their
//! figures; run
//! `cargo nextest run -p xmpp-lambda-tests --test standby --no-capture`
//! to see them.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use xmpp_lambda_tests::{
    Answer, BotReply, BotRequest, BotServer, ChatLoad, Connector, Ejabberd, LoadReport, Moto,
    Prosody, QueueConsumer, Result, XmppClient, XmppServer, body_of, echo_reply, free_port, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(10);
const LINK_UP: &str = "component link established";
const STANDING_BY: &str = "another connector holds the component link";
const TAKING_OVER: &str = "the other connector is gone: taking over the component link";
/// What Prosody logs for each link it refuses with `conflict`.
const PROSODY_REFUSAL: &str = "Second component attempted to connect, denying connection";
/// What Prosody answers while no connector is linked.
const COMPONENT_UNAVAILABLE: &str = "wait/remote-server-timeout (Component unavailable)";
/// What a connector logs for each stanza it read and cannot answer.
const UNANSWERED: &str = "stanza not answered";
/// What a connector answers a new request with while it shuts down.
const RESTARTING: &str = "wait/remote-server-timeout (The bot is restarting)";

/// The promised bound: the standby serves within this long of the server
/// noticing the active link is gone (on loopback it notices at once).
const TAKEOVER_BOUND: Duration = Duration::from_secs(2);
/// How long a standby is watched for log lines it must not print.
const QUIET: Duration = Duration::from_secs(3);

/// The load: messages a second over all users.
const RATE: f64 = 50.0;
/// The users sending it.
const USERS: usize = 3;
/// Replies to see before stopping a connector: a second of steady load.
const STEADY: usize = 50;
/// How long reaching it may take (the sqs path starts slowly on a busy
/// machine).
const STEADY_WAIT: Duration = Duration::from_secs(30);
/// How long every bot takes to answer, so some requests are always in
/// flight (about RATE × BOT_LATENCY of them).
const BOT_LATENCY: Duration = Duration::from_millis(50);
/// How long after a SIGKILL the server may still route a stanza to the
/// dead link: it sees the socket closed at once on loopback; this is
/// slack for a busy machine.
const NOTICE_MARGIN: Duration = Duration::from_millis(500);
/// Nothing sent this long before a SIGKILL may be lost: it was answered
/// long before (bot latency plus the hops are well below it, even on a
/// busy machine).
const IN_FLIGHT_AGE: Duration = Duration::from_secs(2);
/// How long the load goes on once the survivor serves.
const AFTER_TAKEOVER: Duration = Duration::from_secs(2);
/// Once the load stops, answers are awaited until none came for this
/// long: a reply the killed connector took from the reply queue but never
/// wrote comes back after the queue's visibility timeout
/// ([`REPLY_VISIBILITY`]), and is then delivered by the survivor.
const SETTLE: Duration = Duration::from_secs(4);
/// …and at most this long (a busy machine slows the sqs path).
const DRAIN_AT_MOST: Duration = Duration::from_secs(30);
/// The reply queue's visibility timeout in these tests (seconds; the
/// stack's is 30).
const REPLY_VISIBILITY: &str = "2";

// ---- Prosody: a quiet standby ------------------------------------------

#[tokio::test]
async fn prosody_standby_waits_quietly_and_takes_over_after_sigkill_and_sigterm() -> Result<()> {
    let prosody = Prosody::start().await?;
    let bot = BotServer::echo().await?;
    let env = [("COMPONENT_POST_URL", bot.url())];
    let first = ApiConnector::start(&prosody, &env).await?;
    first.connector.wait_for_log(LINK_UP, WAIT).await?;
    first.expect_ready().await?;

    // The second one is refused and stands by, with one line.
    let second = ApiConnector::start(&prosody, &env).await?;
    let line = second.connector.wait_for_log(STANDING_BY, WAIT).await?;
    assert!(
        line.contains("(conflict (Component already connected)): standing by"),
        "{line}"
    );
    let (status, readiness) = second.readyz().await?;
    assert_eq!(status, 503, "{readiness}");
    assert_eq!(readiness["ready"], false, "{readiness}");
    assert_eq!(
        readiness["reason"],
        "standby: another connector holds the component link (conflict (Component already connected))",
    );

    // Quietly: nothing more in its log while it retries, and it does
    // retry (Prosody logs each refusal).
    let refusals_before = prosody.log().matches(PROSODY_REFUSAL).count();
    let lines_before = second.connector.logs().len();
    tokio::time::sleep(QUIET).await;
    let new_lines = second.connector.logs()[lines_before..].to_vec();
    assert!(
        new_lines.is_empty(),
        "the standby logged while waiting:\n{}",
        new_lines.join("\n")
    );
    let retries = prosody.log().matches(PROSODY_REFUSAL).count() - refusals_before;
    println!(
        "[standby] prosody: the standby retried {retries} times in {QUIET:?}, \
         with 0 log lines of its own"
    );
    // Every 0.5–1 s: 3 to 6 attempts in 3 s, give or take one at the edges.
    assert!((2..=7).contains(&retries), "{retries} retries in {QUIET:?}");
    first.expect_ready().await?;

    // SIGKILL: the standby takes over within the bound, once.
    let killed_at = Instant::now();
    first.connector.kill();
    second.connector.wait_for_log(TAKING_OVER, WAIT).await?;
    let takeover = killed_at.elapsed();
    second.connector.wait_for_log(LINK_UP, WAIT).await?;
    println!("[standby] prosody: SIGKILL → the standby linked after {takeover:?}");
    assert!(takeover <= TAKEOVER_BOUND, "takeover took {takeover:?}");
    second.expect_ready().await?;
    let mut alice = login(&prosody, "alice").await?;
    expect_echo(&mut alice, &prosody, "after the kill").await?;

    // A new standby; then SIGTERM to the active one: it leaves cleanly and
    // the standby takes over.
    let mut active = second;
    let third = ApiConnector::start(&prosody, &env).await?;
    third.connector.wait_for_log(STANDING_BY, WAIT).await?;
    let stopped_at = Instant::now();
    active.connector.terminate();
    third.connector.wait_for_log(TAKING_OVER, WAIT).await?;
    let takeover = stopped_at.elapsed();
    println!("[standby] prosody: SIGTERM → the standby linked after {takeover:?}");
    assert!(takeover <= TAKEOVER_BOUND, "takeover took {takeover:?}");
    let status = active.connector.wait_exit(WAIT).await?;
    assert!(
        status.success(),
        "the stopped connector exited with {status}"
    );
    third.expect_ready().await?;
    expect_echo(&mut alice, &prosody, "after the stop").await?;
    for standby in [&active, &third] {
        let lines = standby.connector.logs();
        let waits = lines.iter().filter(|l| l.contains(STANDING_BY)).count();
        let takeovers = lines.iter().filter(|l| l.contains(TAKING_OVER)).count();
        assert_eq!((waits, takeovers), (1, 1), "{}", lines.join("\n"));
    }
    Ok(())
}

// ---- Takeover under load ---------------------------------------------

#[tokio::test]
async fn prosody_http_standby_takes_over_from_a_killed_connector_under_load() -> Result<()> {
    let prosody = Prosody::start().await?;
    takeover_under_load(&prosody, "prosody", Pairing::Standby, Way::Http, Stop::Kill).await
}

#[tokio::test]
async fn prosody_http_standby_takes_over_from_a_stopped_connector_under_load() -> Result<()> {
    let prosody = Prosody::start().await?;
    takeover_under_load(&prosody, "prosody", Pairing::Standby, Way::Http, Stop::Term).await
}

#[tokio::test]
async fn prosody_sqs_standby_takes_over_from_a_killed_connector_under_load() -> Result<()> {
    let prosody = Prosody::start().await?;
    takeover_under_load(&prosody, "prosody", Pairing::Standby, Way::Sqs, Stop::Kill).await
}

#[tokio::test]
async fn prosody_sqs_standby_takes_over_from_a_stopped_connector_under_load() -> Result<()> {
    let prosody = Prosody::start().await?;
    takeover_under_load(&prosody, "prosody", Pairing::Standby, Way::Sqs, Stop::Term).await
}

#[tokio::test]
async fn ejabberd_http_active_active_survives_a_killed_connector_under_load() -> Result<()> {
    let ejabberd = Ejabberd::start().await?;
    takeover_under_load(
        &ejabberd,
        "ejabberd",
        Pairing::ActiveActive,
        Way::Http,
        Stop::Kill,
    )
    .await
}

#[tokio::test]
async fn ejabberd_sqs_active_active_survives_a_killed_connector_under_load() -> Result<()> {
    let ejabberd = Ejabberd::start().await?;
    takeover_under_load(
        &ejabberd,
        "ejabberd",
        Pairing::ActiveActive,
        Way::Sqs,
        Stop::Kill,
    )
    .await
}

// ---- ejabberd: balancing by sender -------------------------------------

/// ejabberd's `domain_balancing` keeps each sender on one link (so one
/// connector sees a conversation in order), but in 23.01 it needs
/// `component_number` (with `type` alone the handshake crashes on
/// `badkey component_number`), and that makes fixed slots: the slot of a
/// dead connector keeps its users, whose stanzas are then dropped without
/// an error. Which is why the book (docs/src/xmpp-servers.md) says to leave the default (a link
/// picked per stanza), which fails over.
#[tokio::test]
async fn ejabberd_balancing_by_sender_strands_the_users_of_a_dead_connector() -> Result<()> {
    let ejabberd = Ejabberd::start_with_config(
        "domain_balancing:\n  \"bot.localhost\":\n    type: bare_source\n    component_number: 2",
    )
    .await?;
    let bot_a = tagged_echo_bot("A").await?;
    let bot_b = tagged_echo_bot("B").await?;
    let a = ApiConnector::start(&ejabberd, &[("COMPONENT_POST_URL", bot_a.url())]).await?;
    let b = ApiConnector::start(&ejabberd, &[("COMPONENT_POST_URL", bot_b.url())]).await?;
    a.connector.wait_for_log(LINK_UP, WAIT).await?;
    b.connector.wait_for_log(LINK_UP, WAIT).await?;

    let to = format!("echo@{}", ejabberd.component_domain());
    // These names hash to both slots (the hash of a JID is fixed).
    let mut users = Vec::new();
    for name in ["ann", "bob", "cid"] {
        users.push(login(&ejabberd, name).await?);
    }
    let mut served_by = BTreeMap::new();
    for user in &mut users {
        let tags = tags_of_replies(user, &to, 4).await?;
        assert_eq!(
            tags.len(),
            1,
            "{}: one link per sender: {tags:?}",
            user.jid()
        );
        served_by.insert(user.jid().to_owned(), tags.into_iter().collect::<String>());
    }
    let connectors: HashSet<&String> = served_by.values().collect();
    assert_eq!(
        connectors.len(),
        2,
        "both links serve someone: {served_by:?}"
    );

    a.connector.kill();
    let mut stranded = Vec::new();
    for user in &mut users {
        if served_by[user.jid()] == "B" {
            let tags = tags_of_replies(user, &to, 2).await?;
            assert_eq!(tags, HashSet::from(["B".to_owned()]), "{}", user.jid());
        } else {
            stranded.push(user);
        }
    }
    // B's users were just served after the kill; A's get nothing at all,
    // not even an error.
    for user in &mut stranded {
        user.send_message(&to, "anyone?").await?;
    }
    for user in &mut stranded {
        let answer = user.recv_message(QUIET).await;
        assert!(answer.is_none(), "{}: {answer:?}", user.jid());
    }
    println!(
        "[standby] ejabberd domain_balancing bare_source: {served_by:?}; after A's SIGKILL \
         B's users are served, A's get no answer within {QUIET:?}"
    );
    Ok(())
}

// ---- The takeover measurement --------------------------------------------

/// What the server does with the second connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pairing {
    /// Refuses it (`conflict`): it stands by.
    Standby,
    /// Links it too and shares the stanzas.
    ActiveActive,
}

/// The transport of both connectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Each connector POSTs to its own bot, tagged `A` or `B`.
    Http,
    /// Both share the queues; the function proxies to one bot.
    Sqs,
}

/// How the active connector goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// SIGKILL: a crash.
    Kill,
    /// SIGTERM: a clean stop.
    Term,
}

/// Runs the load through connector A (and B, active-active), stops A under
/// it, and checks and prints what became of every message.
async fn takeover_under_load(
    server: &impl XmppServer,
    server_name: &str,
    pairing: Pairing,
    way: Way,
    stop: Stop,
) -> Result<()> {
    // The bot side: two tagged bots (http), or the queues, the function
    // and one bot behind it (sqs).
    let (bot_a, bot_b, queues) = match way {
        Way::Http => (
            tagged_echo_bot("A").await?,
            Some(tagged_echo_bot("B").await?),
            None,
        ),
        Way::Sqs => {
            let bot = BotServer::start(|request: BotRequest| async move {
                echo_reply(&request.json).with_delay(BOT_LATENCY)
            })
            .await?;
            let queues = Queues::start(&bot).await?;
            (bot, None, Some(queues))
        }
    };
    let connector_env = |bot: &BotServer| match &queues {
        Some(queues) => queues.connector_env(),
        None => vec![("COMPONENT_POST_URL", bot.url())],
    };
    let a = ApiConnector::start(server, &connector_env(&bot_a)).await?;
    a.connector.wait_for_log(LINK_UP, WAIT).await?;
    let b = ApiConnector::start(server, &connector_env(bot_b.as_ref().unwrap_or(&bot_a))).await?;
    match pairing {
        Pairing::Standby => {
            b.connector.wait_for_log(STANDING_BY, WAIT).await?;
            let (status, _) = b.readyz().await?;
            assert_eq!(status, 503, "a standby is not ready");
        }
        Pairing::ActiveActive => {
            b.connector.wait_for_log(LINK_UP, WAIT).await?;
            b.expect_ready().await?;
        }
    }
    a.expect_ready().await?;

    let mut clients = Vec::new();
    for user in 0..USERS {
        clients.push(login(server, &format!("user{user}")).await?);
    }
    let to = format!("echo@{}", server.component_domain());
    let load = ChatLoad::start(clients, &to, RATE);
    load.wait_for_replies(STEADY, STEADY_WAIT).await?;

    let stopped_at = Instant::now();
    match stop {
        Stop::Kill => a.connector.kill(),
        Stop::Term => a.connector.terminate(),
    }
    let takeover = match pairing {
        Pairing::Standby => {
            b.connector.wait_for_log(TAKING_OVER, WAIT).await?;
            Some(stopped_at.elapsed())
        }
        Pairing::ActiveActive => None,
    };
    let mut a = a;
    let exit = a.connector.wait_exit(WAIT).await?;
    let serving_since = stopped_at + takeover.unwrap_or_default();
    tokio::time::sleep_until(serving_since + AFTER_TAKEOVER).await;
    b.expect_ready().await?;
    let report = load.finish(SETTLE, DRAIN_AT_MOST).await?;

    // Who saw what: the requests that reached A's bot (http) or the one
    // bot behind the queues (sqs).
    let bot_saw: HashSet<String> = bot_a
        .requests()
        .iter()
        .filter_map(|request| request.json["body"].as_str().map(str::to_owned))
        .collect();
    let figures = Figures::of(&report, stopped_at, takeover, &bot_saw);
    println!(
        "[standby] {server_name} {way:?} {stop:?} ({pairing:?}): {}",
        figures.describe()
    );

    // What must hold.
    if let Some(takeover) = takeover {
        assert!(takeover <= TAKEOVER_BOUND, "takeover took {takeover:?}");
    }
    for (error, _) in report.first_errors() {
        assert!(
            error == COMPONENT_UNAVAILABLE || (stop == Stop::Term && error == RESTARTING),
            "unexpected error {error}"
        );
    }
    // Once the survivor serves, every message is replied to, by it.
    let served_from = serving_since.max(stopped_at + NOTICE_MARGIN);
    for message in report.messages.iter().filter(|m| m.sent_at >= served_from) {
        match message.first_answer() {
            Some(Answer::Reply { tag, .. }) if way == Way::Sqs || tag == "B" => {}
            other => panic!(
                "{} sent {:?} after the survivor served: {other:?}",
                message.text,
                message.sent_at - stopped_at
            ),
        }
    }
    match stop {
        Stop::Kill => {
            // Only messages in flight at the kill may go unanswered.
            for message in report.silent() {
                assert!(
                    message.sent_at + IN_FLIGHT_AGE >= stopped_at
                        && message.sent_at <= stopped_at + NOTICE_MARGIN,
                    "{} sent {:?} from the kill was never answered",
                    message.text,
                    message.sent_at.checked_duration_since(stopped_at)
                );
            }
        }
        Stop::Term => {
            assert!(exit.success(), "A exited with {exit} after SIGTERM");
            // XEP-0114 has no way to hand a stanza back: what the server
            // wrote to A after A's last read and before it read A's
            // footer cannot be answered. A names each in its log.
            let unanswered: Vec<String> = a
                .connector
                .logs()
                .into_iter()
                .filter(|line| line.contains(UNANSWERED))
                .collect();
            for message in report.silent() {
                assert!(
                    unanswered.iter().any(|line| line.contains(&message.id)),
                    "{} was lost without a trace in A's log: {:?}",
                    message.text,
                    unanswered
                );
            }
            // In flight at the stop: answered, not refused.
            if way == Way::Http {
                for message in report.messages.iter().filter(|m| bot_saw.contains(&m.text)) {
                    assert!(
                        matches!(message.first_answer(), Some(Answer::Reply { tag, .. }) if tag == "A"),
                        "{}: A's bot had it, yet {:?}",
                        message.text,
                        message.answers
                    );
                }
            }
        }
    }
    if way == Way::Sqs {
        assert_eq!(
            figures.silent_seen_by_bot,
            0,
            "nothing is lost once queued: {:?}",
            report.silent()
        );
    }
    if pairing == Pairing::ActiveActive && way == Way::Http {
        // Both served before the kill, each user's messages on both links
        // (ejabberd picks a link per stanza by default).
        for user in report
            .messages
            .iter()
            .map(|m| &m.user)
            .collect::<HashSet<_>>()
        {
            let tags: HashSet<&str> = report
                .messages
                .iter()
                .filter(|m| &m.user == user && m.sent_at < stopped_at)
                .filter_map(|m| match m.first_answer() {
                    Some(Answer::Reply { tag, .. }) => Some(tag.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(tags, HashSet::from(["A", "B"]), "{user}");
        }
    }
    Ok(())
}

/// What a takeover measurement found.
struct Figures {
    sent: usize,
    replied: usize,
    /// First answers that were errors, by kind.
    errors: BTreeMap<String, usize>,
    /// Messages never answered.
    silent: usize,
    /// Of those, how many the bot had received (http: A's bot posted to,
    /// reply lost with A; sqs: queued, must be 0).
    silent_seen_by_bot: usize,
    /// Messages sent before the stop and not answered by then.
    in_flight_at_stop: usize,
    /// From the stop to the standby's link (standby only).
    takeover: Option<Duration>,
    /// From the stop to the first reply to a message sent after it.
    first_new_reply: Option<Duration>,
    /// From the stop to the last error answer.
    last_error: Option<Duration>,
    /// Replies beyond the first.
    duplicates: usize,
    /// Median and slowest time from sending to the reply, for messages
    /// sent before the stop (the steady state).
    latency_before: (Duration, Duration),
}

impl Figures {
    fn of(
        report: &LoadReport,
        stopped_at: Instant,
        takeover: Option<Duration>,
        bot_saw: &HashSet<String>,
    ) -> Figures {
        let silent = report.silent();
        let since_stop = |at: Instant| at.saturating_duration_since(stopped_at);
        Figures {
            sent: report.messages.len(),
            replied: report.replied(),
            errors: report.first_errors(),
            silent: silent.len(),
            silent_seen_by_bot: silent.iter().filter(|m| bot_saw.contains(&m.text)).count(),
            in_flight_at_stop: report
                .messages
                .iter()
                .filter(|m| m.sent_at < stopped_at)
                .filter(|m| m.first_answer().is_none_or(|a| a.at() >= stopped_at))
                .count(),
            takeover,
            first_new_reply: report
                .messages
                .iter()
                .filter(|m| m.sent_at >= stopped_at)
                .filter_map(|m| m.first_reply().map(Answer::at))
                .min()
                .map(since_stop),
            last_error: report
                .messages
                .iter()
                .flat_map(|m| &m.answers)
                .filter(|a| matches!(a, Answer::Error { .. }))
                .map(Answer::at)
                .max()
                .map(since_stop),
            duplicates: report.duplicate_replies(),
            latency_before: median_and_max(
                report
                    .messages
                    .iter()
                    .filter(|m| m.sent_at < stopped_at)
                    .filter_map(|m| m.first_reply().map(|r| r.at() - m.sent_at)),
            ),
        }
    }

    fn describe(&self) -> String {
        let ms =
            |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{} ms", d.as_millis()));
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(error, count)| format!("{count} × {error}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{} sent at {RATE}/s, {} replied; takeover {}; first reply to a new message {}; \
             errors: {errors} (last at {}); silent {} (of them the bot had {}); \
             in flight at the stop {}; duplicate replies {}; reply time before the stop \
             {} ms median, {} ms max",
            self.sent,
            self.replied,
            ms(self.takeover),
            ms(self.first_new_reply),
            ms(self.last_error),
            self.silent,
            self.silent_seen_by_bot,
            self.in_flight_at_stop,
            self.duplicates,
            self.latency_before.0.as_millis(),
            self.latency_before.1.as_millis(),
        )
    }
}

/// The median and the largest of `durations` (zero when empty).
fn median_and_max(durations: impl Iterator<Item = Duration>) -> (Duration, Duration) {
    let mut sorted: Vec<Duration> = durations.collect();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    (median, sorted.last().copied().unwrap_or_default())
}

// ---- Parts -------------------------------------------------------------

/// A connector with its API listener, for `/readyz`.
struct ApiConnector {
    connector: Connector,
    /// Its API port on 127.0.0.1.
    api_port: u16,
}

impl ApiConnector {
    /// Starts a connector for `server`'s component with `env` and an API
    /// listener on a free port.
    async fn start(server: &impl XmppServer, env: &[(&'static str, String)]) -> Result<Self> {
        let api_port = free_port();
        let listen = format!("127.0.0.1:{api_port}");
        let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        all.push(("COMPONENT_API_LISTEN", &listen));
        let connector = Connector::start_for(server, &all).await?;
        Ok(ApiConnector {
            connector,
            api_port,
        })
    }

    /// `GET /readyz`: the status and the JSON body.
    async fn readyz(&self) -> Result<(u16, Value)> {
        let response = reqwest::get(format!("http://127.0.0.1:{}/readyz", self.api_port)).await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await?))
    }

    /// `/readyz` answers 200 `{"ready":true}`.
    async fn expect_ready(&self) -> Result<()> {
        let (status, body) = self.readyz().await?;
        assert_eq!((status, &body), (200, &json!({"ready": true})));
        Ok(())
    }
}

/// An echo bot answering after [`BOT_LATENCY`] with `tag` in front, so a
/// reply tells which connector's bot served it.
async fn tagged_echo_bot(tag: &'static str) -> Result<BotServer> {
    BotServer::start(move |request: BotRequest| async move {
        let body = request.json["body"].as_str().unwrap_or_default().to_owned();
        BotReply::json(json!({ "body": format!("{tag} Did you say {body}?") }))
            .with_delay(BOT_LATENCY)
    })
    .await
}

/// Sends one message and expects the echo.
async fn expect_echo(client: &mut XmppClient, server: &impl XmppServer, text: &str) -> Result<()> {
    let to = format!("echo@{}", server.component_domain());
    client.send_message(&to, text).await?;
    let reply = client.expect_message("the echo", WAIT).await?;
    assert_eq!(
        body_of(&reply).as_deref(),
        Some(format!("Did you say {text}?").as_str())
    );
    Ok(())
}

/// Sends `count` messages one after the other (each once the previous is
/// answered, or unanswered for a second) and returns the tags of the
/// replies.
async fn tags_of_replies(
    client: &mut XmppClient,
    to: &str,
    count: usize,
) -> Result<HashSet<String>> {
    let mut tags = HashSet::new();
    let mut replies = 0;
    let mut attempts = 0;
    while replies < count {
        attempts += 1;
        if attempts > count + 3 {
            return Err(format!("{}: {replies} of {count} replies", client.jid()).into());
        }
        client.send_message(to, &format!("m{attempts}")).await?;
        let Some(reply) = client.recv_message(Duration::from_secs(1)).await else {
            continue;
        };
        let body = body_of(&reply).unwrap_or_default();
        let (tag, _) = body
            .split_once(" Did you say ")
            .ok_or_else(|| format!("not an echo: {reply:?}"))?;
        tags.insert(tag.to_owned());
        replies += 1;
    }
    Ok(tags)
}

/// The queues of the sqs transport, the function proxying to a bot, and
/// the trigger feeding it.
struct Queues {
    moto: Moto,
    requests: String,
    replies: String,
    /// Kept for their `Drop`: the processes stop with the test.
    _serverless: QueueConsumer,
}

impl Queues {
    /// Standard queues: the function answers a batch's records together,
    /// which a steady 50 a second needs with a bot that takes its time.
    async fn start(bot: &BotServer) -> Result<Queues> {
        let moto = Moto::start().await?;
        let requests = moto
            .create_queue_with("requests", &[("VisibilityTimeout", "10")])
            .await?;
        let replies = moto
            .create_queue_with("replies", &[("VisibilityTimeout", REPLY_VISIBILITY)])
            .await?;
        let bot_url = bot.url();
        let consumer = QueueConsumer::start(
            &moto,
            &requests,
            &replies,
            &[("BOT", "proxy"), ("COMPONENT_POST_URL", &bot_url)],
        )
        .await?;
        Ok(Queues {
            moto,
            requests,
            replies,
            _serverless: consumer,
        })
    }

    fn connector_env(&self) -> Vec<(&'static str, String)> {
        self.moto.sqs_transport_env(&self.requests, &self.replies)
    }
}
