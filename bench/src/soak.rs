//! The soak driver: users who keep messaging a bot through server restarts
//! and connector crashes, and account for every message.
//!
//! Each user is one task with a raw client stream (see [`crate::xmpp`])
//! that enables XEP-0198 stream management, so the server's `<a h='…'/>`
//! acks say which messages it took. When the stream breaks (the server
//! restarts), the user logs in again at once; a message the server never
//! acknowledged is sent again as a new *attempt* (its own id and body tag),
//! and counted as re-sent. Replies the server could not deliver while the
//! user was away wait in its offline storage (`mod_offline`) and arrive at
//! the next login.
//!
//! Every message carries `#<seq>.<attempt>` in its body (the echo bot's
//! reply repeats it) and `<user>-<seq>-<attempt>` as its id (an error
//! keeps it), so each answer is matched to the attempt it answers. At the
//! end a message is *answered* when any attempt got a reply or an error,
//! *lost* otherwise; an attempt answered more than once is a *duplicate*.
//! Nothing is retried on a timeout: a message without an answer stays lost.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use minidom::Element;

use crate::xmpp::{self, XmppConnection, XmppError};

/// XEP-0198 stream management.
const NS_SM: &str = "urn:xmpp:sm:3";
/// XEP-0203 delayed delivery: marks a message from offline storage.
const NS_DELAY: &str = "urn:xmpp:delay";
/// One login attempt may take this long.
const LOGIN_LIMIT: Duration = Duration::from_secs(10);
/// Between failed logins (the server is restarting).
const LOGIN_RETRY: Duration = Duration::from_millis(50);
/// How often a session wakes up without traffic, to send and to check
/// whether it is done.
const TICK: Duration = Duration::from_millis(50);

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// The server's address.
    pub host: String,
    /// The server's c2s port.
    pub port: u16,
    /// The users' domain.
    pub domain: String,
    /// The user names (registered beforehand), one session each.
    pub users: Vec<String>,
    /// Every user's password.
    pub password: String,
    /// Where the messages go (the echo bot).
    pub target: String,
    /// Messages each user sends.
    pub messages_per_user: u64,
    /// Messages a user has waiting for an answer at once.
    pub window: usize,
    /// The shortest time between two new messages of one user, so a fast
    /// path is kept busy for the whole run instead of a burst (zero: as
    /// fast as the window allows).
    pub interval: Duration,
    /// A message unanswered this long stops holding a window place (it is
    /// still waited for until the end).
    pub answer_timeout: Duration,
    /// After its last message, how long a user waits for the remaining
    /// answers before they count as lost.
    pub drain: Duration,
    /// Once every user is done, how long all keep listening, so late
    /// duplicates are counted too.
    pub quiet: Duration,
}

/// Live counters, for whoever injects faults as the run goes.
#[derive(Debug, Default)]
pub struct Progress {
    /// Messages sent for the first time.
    pub sent: AtomicU64,
    /// Messages with at least one answer.
    pub answered: AtomicU64,
    /// Logins, the first ones included.
    pub logins: AtomicU64,
    /// Users that have sent everything and have every answer (or waited
    /// `drain` for it).
    pub settled: AtomicUsize,
}

/// One try at delivering a message.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The stanza id, `<user>-<seq>-<attempt>`.
    pub id: String,
    /// When it was written.
    pub sent_at: Instant,
    /// Which login of the user sent it (1 is the first).
    pub session: u32,
    /// Whether the server acknowledged it (XEP-0198).
    pub acked: bool,
}

/// What came back for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A reply; `expected` says whether its body was the echo of exactly
    /// what was sent.
    Reply { expected: bool },
    /// An error, as `type/condition`.
    Error(String),
}

/// One answer at the client.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The attempt it answers (0 is the first).
    pub attempt: usize,
    /// Reply or error.
    pub outcome: Outcome,
    /// When it arrived.
    pub at: Instant,
    /// It came from offline storage (the user was away when it was sent).
    pub from_storage: bool,
}

/// Everything about one message.
#[derive(Debug, Clone, Default)]
pub struct MessageRecord {
    /// Its tries, in order.
    pub attempts: Vec<Attempt>,
    /// Every answer, in arrival order.
    pub answers: Vec<Answer>,
}

impl MessageRecord {
    /// Whether any attempt got an answer.
    pub fn answered(&self) -> bool {
        !self.answers.is_empty()
    }

    /// The last attempt's send time.
    fn last_sent(&self) -> Option<Instant> {
        self.attempts.last().map(|a| a.sent_at)
    }
}

/// One user's account of the run.
#[derive(Debug, Clone)]
pub struct UserLedger {
    /// The user name.
    pub user: String,
    /// Every message, by sequence number.
    pub messages: Vec<MessageRecord>,
    /// Logins (1 when the stream never broke).
    pub sessions: u32,
    /// Why streams broke or logins failed, in order (for the report).
    pub breaks: Vec<String>,
    /// Answers that matched no message (should stay empty).
    pub unmatched: Vec<String>,
}

impl UserLedger {
    fn new(user: &str, messages: u64) -> UserLedger {
        UserLedger {
            user: user.to_owned(),
            messages: (0..messages).map(|_| MessageRecord::default()).collect(),
            sessions: 0,
            breaks: Vec::new(),
            unmatched: Vec::new(),
        }
    }
}

/// The whole run's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoakSummary {
    /// Messages (each counted once, however often it was sent).
    pub messages: u64,
    /// Attempts written to a stream.
    pub attempts: u64,
    /// Attempts the server acknowledged.
    pub acked: u64,
    /// Attempts that were sent again because the server never
    /// acknowledged them before the stream broke.
    pub resent: u64,
    /// Messages with at least one answer.
    pub answered: u64,
    /// Messages without any answer.
    pub lost: u64,
    /// Answers that were replies / errors (duplicates included).
    pub replies: u64,
    pub errors: u64,
    /// Errors by `type/condition`.
    pub error_conditions: BTreeMap<String, u64>,
    /// Extra answers to an attempt that was already answered.
    pub duplicates: u64,
    /// Of those, the ones that came from the server's offline storage
    /// (delivered to a session that ended before it acknowledged them).
    pub duplicates_from_storage: u64,
    /// Messages answered for more than one attempt (a re-send the server
    /// had taken after all).
    pub answered_twice_by_resend: u64,
    /// Replies whose body was not the echo of what was sent.
    pub wrong_replies: u64,
    /// Answers delivered from offline storage.
    pub from_storage: u64,
    /// Answers that matched no message.
    pub unmatched: u64,
    /// Logins over all users.
    pub sessions: u64,
}

/// Adds up the users' ledgers.
pub fn summarize(ledgers: &[UserLedger]) -> SoakSummary {
    let mut s = SoakSummary::default();
    for ledger in ledgers {
        s.sessions += u64::from(ledger.sessions);
        s.unmatched += ledger.unmatched.len() as u64;
        for message in &ledger.messages {
            if message.attempts.is_empty() {
                continue;
            }
            s.messages += 1;
            s.attempts += message.attempts.len() as u64;
            s.acked += message.attempts.iter().filter(|a| a.acked).count() as u64;
            s.resent += message.attempts.len() as u64 - 1;
            if message.answered() {
                s.answered += 1;
            } else {
                s.lost += 1;
            }
            let mut per_attempt = vec![0u64; message.attempts.len()];
            for answer in &message.answers {
                match &answer.outcome {
                    Outcome::Reply { expected } => {
                        s.replies += 1;
                        if !expected {
                            s.wrong_replies += 1;
                        }
                    }
                    Outcome::Error(condition) => {
                        s.errors += 1;
                        *s.error_conditions.entry(condition.clone()).or_default() += 1;
                    }
                }
                if answer.from_storage {
                    s.from_storage += 1;
                }
                if let Some(count) = per_attempt.get_mut(answer.attempt) {
                    *count += 1;
                    if *count > 1 && answer.from_storage {
                        s.duplicates_from_storage += 1;
                    }
                }
            }
            s.duplicates += per_attempt.iter().map(|n| n.saturating_sub(1)).sum::<u64>();
            if per_attempt.iter().filter(|&&n| n > 0).count() > 1 {
                s.answered_twice_by_resend += 1;
            }
        }
    }
    s
}

/// Runs every user until all are settled and the quiet time has passed;
/// returns their ledgers.
pub async fn run(config: Arc<SoakConfig>, progress: Arc<Progress>) -> Vec<UserLedger> {
    // Set once every user is settled: all keep listening until then.
    let stop_at: Arc<tokio::sync::OnceCell<Instant>> = Arc::new(tokio::sync::OnceCell::new());
    let mut tasks = Vec::new();
    for user in config.users.clone() {
        let config = Arc::clone(&config);
        let progress = Arc::clone(&progress);
        let stop_at = Arc::clone(&stop_at);
        tasks.push(tokio::spawn(async move {
            run_user(&user, &config, &progress, &stop_at).await
        }));
    }
    let users = config.users.len();
    while progress.settled.load(Ordering::Relaxed) < users {
        tokio::time::sleep(TICK).await;
    }
    let _ = stop_at.set(Instant::now() + config.quiet);
    let mut ledgers = Vec::new();
    for (task, user) in tasks.into_iter().zip(&config.users) {
        match task.await {
            Ok(ledger) => ledgers.push(ledger),
            Err(panic) => {
                let mut ledger = UserLedger::new(user, 0);
                ledger.breaks.push(format!("the user's task died: {panic}"));
                ledgers.push(ledger);
            }
        }
    }
    ledgers
}

/// One user: log in, send, count, and log in again whenever the stream
/// breaks, until the run stops.
async fn run_user(
    user: &str,
    config: &SoakConfig,
    progress: &Progress,
    stop_at: &tokio::sync::OnceCell<Instant>,
) -> UserLedger {
    let mut session = Session::new(user, config);
    let mut settled = false;
    loop {
        if stop_at.get().is_some_and(|at| Instant::now() >= *at) {
            break;
        }
        let login = XmppConnection::login(
            &config.host,
            config.port,
            &config.domain,
            user,
            &config.password,
            "soak",
            LOGIN_LIMIT,
        )
        .await;
        let mut conn = match login {
            Ok(conn) => conn,
            Err(e) => {
                // The server is down or restarting: try again shortly.
                session.note_break(format!("login: {e}"));
                tokio::time::sleep(LOGIN_RETRY).await;
                continue;
            }
        };
        progress.logins.fetch_add(1, Ordering::Relaxed);
        session.ledger.sessions += 1;
        let result = session
            .drive(&mut conn, config, progress, stop_at, &mut settled)
            .await;
        match result {
            Ok(()) => {
                conn.close().await;
                break;
            }
            Err(e) => {
                session.note_break(format!("stream: {e}"));
                session.stream_lost();
            }
        }
    }
    if !settled {
        progress.settled.fetch_add(1, Ordering::Relaxed);
    }
    session.ledger
}

/// One user's state across logins.
struct Session {
    /// The account so far.
    ledger: UserLedger,
    /// The next message never sent yet.
    next_seq: u64,
    /// Messages whose last attempt the server did not acknowledge before
    /// the stream broke: sent again first on the next stream.
    to_resend: VecDeque<u64>,
    /// The messages written on the current stream and not yet
    /// acknowledged, oldest first.
    unacked: VecDeque<u64>,
    /// No new message before this (see [`SoakConfig::interval`]).
    next_send_at: Instant,
    /// The echo text expected for each message's attempts is rebuilt from
    /// this user name.
    user: String,
}

impl Session {
    fn new(user: &str, config: &SoakConfig) -> Session {
        Session {
            ledger: UserLedger::new(user, config.messages_per_user),
            next_seq: 0,
            to_resend: VecDeque::new(),
            unacked: VecDeque::new(),
            next_send_at: Instant::now(),
            user: user.to_owned(),
        }
    }

    fn note_break(&mut self, reason: String) {
        // Keep the report short: a restart makes many failed logins.
        if self.ledger.breaks.len() < 50 {
            self.ledger.breaks.push(reason);
        }
    }

    /// The stream broke: whatever it had not acknowledged is sent again.
    fn stream_lost(&mut self) {
        while let Some(seq) = self.unacked.pop_front() {
            if !self.message(seq).answered() {
                self.to_resend.push_back(seq);
            }
        }
    }

    fn message(&self, seq: u64) -> &MessageRecord {
        &self.ledger.messages[seq as usize]
    }

    /// Messages sent, unanswered, and still within the answer timeout.
    fn waiting(&self, config: &SoakConfig, now: Instant) -> usize {
        self.ledger.messages[..self.next_seq as usize]
            .iter()
            .filter(|m| {
                !m.answered()
                    && m.last_sent()
                        .is_some_and(|t| now.duration_since(t) < config.answer_timeout)
            })
            .count()
    }

    /// Everything sent, and every message answered or given up on.
    fn is_settled(&self, config: &SoakConfig, now: Instant) -> bool {
        self.next_seq == config.messages_per_user
            && self.to_resend.is_empty()
            && self.ledger.messages.iter().all(|m| {
                m.answered()
                    || m.last_sent()
                        .is_some_and(|t| now.duration_since(t) >= config.drain)
            })
    }

    /// The body of an attempt; the echo bot answers "Did you say <body>?".
    fn body(&self, seq: u64, attempt: usize) -> String {
        format!("soak {} #{seq}.{attempt}", self.user)
    }

    /// Writes a new attempt of message `seq`.
    fn attempt_xml(&mut self, seq: u64, session: u32, target: &str) -> String {
        let attempt = self.message(seq).attempts.len();
        let id = format!("{}-{seq}-{attempt}", self.user);
        let xml = format!(
            "<message to='{}' type='chat' id='{}'><body>{}</body></message>",
            xmpp::escape(target),
            xmpp::escape(&id),
            xmpp::escape(&self.body(seq, attempt))
        );
        self.ledger.messages[seq as usize].attempts.push(Attempt {
            id,
            sent_at: Instant::now(),
            session,
            acked: false,
        });
        self.unacked.push_back(seq);
        xml
    }

    /// Runs one stream until the run stops (Ok) or the stream breaks.
    async fn drive(
        &mut self,
        conn: &mut XmppConnection,
        config: &SoakConfig,
        progress: &Progress,
        stop_at: &tokio::sync::OnceCell<Instant>,
        settled: &mut bool,
    ) -> Result<(), XmppError> {
        let session = self.ledger.sessions;
        conn.send(&format!("<enable xmlns='{NS_SM}'/>")).await?;
        let mut sm = StreamCounters::default();
        let mut out = String::new();
        loop {
            while let Some(stanza) = conn.poll_element()? {
                self.handle(&stanza, &mut sm, progress)?;
            }
            // Acknowledge what arrived at once, asked or not: a stanza the
            // server still counts as unacknowledged when its session ends
            // goes to offline storage and arrives a second time.
            if sm.ack_requested || sm.inbound != sm.acked_to_server {
                sm.ack_requested = false;
                sm.acked_to_server = sm.inbound;
                out.push_str(&format!("<a xmlns='{NS_SM}' h='{}'/>", sm.inbound));
            }
            let now = Instant::now();
            // Only once the server counts our stanzas can we tell which
            // it took.
            if sm.enabled {
                let mut wrote = false;
                while let Some(seq) = self.to_resend.pop_front() {
                    out.push_str(&self.attempt_xml(seq, session, &config.target));
                    wrote = true;
                }
                while self.next_seq < config.messages_per_user
                    && self.waiting(config, now) < config.window
                    && now >= self.next_send_at
                {
                    self.next_send_at = now + config.interval;
                    let seq = self.next_seq;
                    self.next_seq += 1;
                    out.push_str(&self.attempt_xml(seq, session, &config.target));
                    progress.sent.fetch_add(1, Ordering::Relaxed);
                    wrote = true;
                }
                if wrote {
                    out.push_str(&format!("<r xmlns='{NS_SM}'/>"));
                }
            }
            if !out.is_empty() {
                conn.send(&out).await?;
                out.clear();
            }
            if !*settled && self.is_settled(config, now) {
                *settled = true;
                progress.settled.fetch_add(1, Ordering::Relaxed);
            }
            if stop_at.get().is_some_and(|at| now >= *at) {
                return Ok(());
            }
            // Wait for bytes, or tick.
            if let Ok(filled) = tokio::time::timeout(TICK, conn.fill()).await {
                filled?;
            }
        }
    }

    /// One element from the server.
    fn handle(
        &mut self,
        element: &Element,
        sm: &mut StreamCounters,
        progress: &Progress,
    ) -> Result<(), XmppError> {
        if element.ns() == NS_SM {
            match element.name() {
                "enabled" => sm.enabled = true,
                "failed" => {
                    return Err(XmppError::Bind(
                        "the server refused stream management (is mod_smacks loaded?)".into(),
                    ));
                }
                "r" => sm.ack_requested = true,
                "a" => {
                    let h: u32 = element.attr("h").and_then(|h| h.parse().ok()).unwrap_or(0);
                    // h counts every stanza handled since enabling, modulo 2^32.
                    let newly = h.wrapping_sub(sm.acked_by_server);
                    sm.acked_by_server = h;
                    for _ in 0..newly {
                        let Some(seq) = self.unacked.pop_front() else {
                            break;
                        };
                        if let Some(attempt) =
                            self.ledger.messages[seq as usize].attempts.last_mut()
                        {
                            attempt.acked = true;
                        }
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        if matches!(element.name(), "message" | "presence" | "iq") && sm.enabled {
            sm.inbound = sm.inbound.wrapping_add(1);
        }
        if element.name() == "message" {
            self.record_answer(element, progress);
        }
        Ok(())
    }

    /// Matches a message from the server to the attempt it answers.
    fn record_answer(&mut self, stanza: &Element, progress: &Progress) {
        let from_storage = stanza.children().any(|c| c.is("delay", NS_DELAY));
        let (found, outcome) = if stanza.attr("type") == Some("error") {
            let found = stanza.attr("id").and_then(|id| self.parse_id(id));
            (found, Outcome::Error(xmpp::error_condition(stanza)))
        } else {
            let body = stanza
                .children()
                .find(|c| c.name() == "body")
                .map(Element::text)
                .unwrap_or_default();
            let found = parse_tag(&body);
            let expected = found.is_some_and(|(seq, attempt)| {
                body == format!("Did you say {}?", self.body(seq, attempt))
            });
            (found, Outcome::Reply { expected })
        };
        let Some((seq, attempt)) = found.filter(|(seq, attempt)| {
            self.ledger
                .messages
                .get(*seq as usize)
                .is_some_and(|m| *attempt < m.attempts.len())
        }) else {
            if self.ledger.unmatched.len() < 50 {
                self.ledger.unmatched.push(xmpp_text(stanza));
            }
            return;
        };
        let message = &mut self.ledger.messages[seq as usize];
        if !message.answered() {
            progress.answered.fetch_add(1, Ordering::Relaxed);
        }
        message.answers.push(Answer {
            attempt,
            outcome,
            at: Instant::now(),
            from_storage,
        });
    }

    /// `(seq, attempt)` of one of this user's ids, `<user>-<seq>-<attempt>`.
    fn parse_id(&self, id: &str) -> Option<(u64, usize)> {
        let rest = id.strip_prefix(&self.user)?.strip_prefix('-')?;
        let (seq, attempt) = rest.split_once('-')?;
        Some((seq.parse().ok()?, attempt.parse().ok()?))
    }
}

/// XEP-0198 counters of one stream.
#[derive(Debug, Default)]
struct StreamCounters {
    /// The server confirmed `<enabled/>`.
    enabled: bool,
    /// Stanzas received since then (what our `<a h='…'/>` says).
    inbound: u32,
    /// The `h` we last sent.
    acked_to_server: u32,
    /// The server's last `h`: our stanzas it has handled.
    acked_by_server: u32,
    /// The server asked for our count.
    ack_requested: bool,
}

/// `(seq, attempt)` from a `#<seq>.<attempt>` tag anywhere in a body.
pub fn parse_tag(body: &str) -> Option<(u64, usize)> {
    let tail = &body[body.find('#')? + 1..];
    let end = tail
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(tail.len());
    let (seq, attempt) = tail[..end].split_once('.')?;
    Some((seq.parse().ok()?, attempt.parse().ok()?))
}

/// A stanza as text, for the report.
fn xmpp_text(stanza: &Element) -> String {
    let mut out = Vec::new();
    match stanza.write_to(&mut out) {
        Ok(()) => String::from_utf8_lossy(&out).into_owned(),
        Err(e) => format!("(unwritable stanza: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SoakConfig {
        SoakConfig {
            host: "127.0.0.1".into(),
            port: 1,
            domain: "localhost".into(),
            users: vec!["u0".into()],
            password: "pw".into(),
            target: "echo@bot.localhost".into(),
            messages_per_user: 3,
            window: 2,
            interval: Duration::ZERO,
            answer_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(30),
            quiet: Duration::from_secs(1),
        }
    }

    fn parse(xml: &str) -> Element {
        Element::from_reader_with_prefixes(xml.as_bytes(), Some(xmpp::NS_CLIENT.to_owned()))
            .expect("valid stanza")
    }

    #[test]
    fn tags_and_ids_name_the_attempt() {
        assert_eq!(parse_tag("Did you say soak u0 #17.2?"), Some((17, 2)));
        assert_eq!(parse_tag("#0.0"), Some((0, 0)));
        assert_eq!(parse_tag("#17"), None);
        assert_eq!(parse_tag("no tag"), None);
        let session = Session::new("u0", &config());
        assert_eq!(session.parse_id("u0-5-1"), Some((5, 1)));
        assert_eq!(session.parse_id("u1-5-1"), None);
        assert_eq!(session.parse_id("u0-x-1"), None);
    }

    #[test]
    fn acks_replies_errors_resends_and_duplicates_are_counted() {
        let config = config();
        let progress = Progress::default();
        let mut session = Session::new("u0", &config);
        session.ledger.sessions = 1;
        let mut sm = StreamCounters::default();
        session
            .handle(
                &parse("<enabled xmlns='urn:xmpp:sm:3'/>"),
                &mut sm,
                &progress,
            )
            .expect("enabled");
        assert!(sm.enabled);
        for seq in 0..3 {
            session.attempt_xml(seq, 1, &config.target);
            session.next_seq += 1;
        }
        // The server took the first two.
        session
            .handle(
                &parse("<a xmlns='urn:xmpp:sm:3' h='2'/>"),
                &mut sm,
                &progress,
            )
            .expect("ack");
        assert_eq!(session.unacked, [2]);
        // A reply to 0 (twice: a duplicate) and an error to 1.
        let reply =
            parse("<message type='chat' id='x'><body>Did you say soak u0 #0.0?</body></message>");
        session.handle(&reply, &mut sm, &progress).expect("reply");
        session.handle(&reply, &mut sm, &progress).expect("reply");
        let error = parse(
            "<message type='error' id='u0-1-0'><error type='wait'>\
             <remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        );
        session.handle(&error, &mut sm, &progress).expect("error");
        assert_eq!(sm.inbound, 3);
        // The stream breaks: 2 was never acknowledged and goes again.
        session.stream_lost();
        assert_eq!(session.to_resend, [2]);
        session.to_resend.clear();
        session.attempt_xml(2, 2, &config.target);
        let late =
            parse("<message type='chat' id='y'><body>Did you say soak u0 #2.1?</body></message>");
        session.handle(&late, &mut sm, &progress).expect("reply");
        let wrong = parse(
            "<message type='chat' id='z'><body>Did you say soak u0 #2.0 (sic)?</body></message>",
        );
        session.handle(&wrong, &mut sm, &progress).expect("reply");

        let summary = summarize(&[session.ledger.clone()]);
        assert_eq!(summary.messages, 3);
        assert_eq!(summary.attempts, 4);
        assert_eq!(summary.acked, 2);
        assert_eq!(summary.resent, 1);
        assert_eq!(summary.answered, 3);
        assert_eq!(summary.lost, 0);
        assert_eq!(summary.replies, 4);
        assert_eq!(summary.errors, 1);
        assert_eq!(summary.error_conditions["wait/remote-server-timeout"], 1);
        assert_eq!(summary.duplicates, 1);
        assert_eq!(summary.answered_twice_by_resend, 1);
        assert_eq!(summary.wrong_replies, 1);
        assert_eq!(progress.answered.load(Ordering::Relaxed), 3);
        assert!(session.is_settled(&config, Instant::now()));
    }
}
