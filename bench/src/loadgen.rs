//! The load run: sessions log in, wait for each other, then keep a window of
//! requests outstanding until the count or the duration is used up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use minidom::Element;
use tokio::sync::{Barrier, Semaphore};

use crate::args::{Mode, Options};
use crate::http_load;
use crate::stats::{Summary, Tally};
use crate::xmpp::{self, XmppConnection, XmppError};

/// How long one session may take to log in.
const LOGIN_LIMIT: Duration = Duration::from_secs(20);
/// `prosodyctl register` runs at once (each is a Lua process start).
const REGISTER_CONCURRENCY: usize = 4;

/// The requests still to send, shared by all sessions.
#[derive(Debug)]
pub struct Budget {
    /// Requests left to hand out (`u64::MAX` when only the duration bounds the run).
    remaining: AtomicU64,
    /// No request is sent after this instant, if set.
    deadline: Option<Instant>,
}

impl Budget {
    /// A budget of `count` requests and/or `duration` from now.
    pub fn new(count: Option<u64>, duration: Option<Duration>) -> Budget {
        Budget {
            remaining: AtomicU64::new(count.unwrap_or(u64::MAX)),
            deadline: duration.map(|d| Instant::now() + d),
        }
    }

    /// Takes one request from the budget; false when it is used up.
    pub fn take(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        self.remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Runs the whole load as the options say and returns its summary.
pub async fn run(opts: Options) -> Summary {
    if let Some(config) = &opts.prosody_config {
        register_users(&opts, config).await;
    }
    let opts = Arc::new(opts);
    // Everyone (the sessions and this task) starts measuring at the same moment.
    let start_line = Arc::new(Barrier::new(opts.sessions + 1));
    let budget = Arc::new(tokio::sync::OnceCell::new());
    let mut sessions = Vec::with_capacity(opts.sessions);
    for n in 0..opts.sessions {
        let opts = Arc::clone(&opts);
        let start_line = Arc::clone(&start_line);
        let budget = Arc::clone(&budget);
        sessions.push(tokio::spawn(async move {
            run_session(n, &opts, &start_line, &budget).await
        }));
    }
    start_line.wait().await;
    let started = Instant::now();
    // Whoever passes the start line first starts the clock of the budget.
    budget
        .get_or_init(|| async { Budget::new(opts.count, opts.duration) })
        .await;
    let mut tally = Tally::default();
    for session in sessions {
        match session.await {
            Ok(session_tally) => tally.merge(session_tally),
            Err(panic) => tally.failures.push(format!("session task died: {panic}")),
        }
    }
    let mode = match opts.mode {
        Mode::Message => "message",
        Mode::Stream => "stream",
        Mode::Ping => "ping",
        Mode::Http => "http",
    };
    Summary::new(
        mode,
        opts.sessions,
        opts.in_flight,
        tally,
        started.elapsed(),
    )
}

/// Registers every user with `prosodyctl`; an existing user is fine.
async fn register_users(opts: &Options, config: &std::path::Path) {
    let permits = Arc::new(Semaphore::new(REGISTER_CONCURRENCY));
    let mut tasks = Vec::new();
    for n in 0..opts.sessions {
        let permits = Arc::clone(&permits);
        let mut command = tokio::process::Command::new("prosodyctl");
        command
            .arg("--config")
            .arg(config)
            .args(["register", &opts.user(n), &opts.domain, &opts.password])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire().await;
            // A failure shows up as a login failure with the server's reason.
            let _ = command.status().await;
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// One session: log in and warm up, wait for the others, run, report.
async fn run_session(
    n: usize,
    opts: &Options,
    start_line: &Barrier,
    budget: &tokio::sync::OnceCell<Budget>,
) -> Tally {
    let mut tally = Tally::default();
    if opts.mode == Mode::Http {
        let prepared = http_load::HttpSlots::connect(n, opts).await;
        start_line.wait().await;
        let budget = budget
            .get_or_init(|| async { Budget::new(opts.count, opts.duration) })
            .await;
        match prepared {
            Ok(slots) => slots.run(opts, budget, &mut tally).await,
            Err(e) => tally.failures.push(format!("session {n}: {e}")),
        }
        return tally;
    }
    let prepared = async {
        let mut conn = XmppConnection::login(
            &opts.host,
            opts.port,
            &opts.domain,
            &opts.user(n),
            &opts.password,
            &format!("load{n}"),
            LOGIN_LIMIT,
        )
        .await?;
        if opts.warmup > 0 {
            let warmup = Budget::new(Some(opts.warmup), None);
            let mut ignored = Tally::default();
            drive(
                n,
                &mut conn,
                &opts.warmup_options(),
                &warmup,
                &mut ignored,
                0,
            )
            .await?;
        }
        Ok::<_, XmppError>(conn)
    }
    .await;
    start_line.wait().await;
    let budget = budget
        .get_or_init(|| async { Budget::new(opts.count, opts.duration) })
        .await;
    let result = match prepared {
        Ok(mut conn) => {
            let driven = drive(n, &mut conn, opts, budget, &mut tally, opts.warmup).await;
            conn.close().await;
            driven
        }
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tally
            .failures
            .push(format!("session {n} ({}): {e}", opts.user(n)));
    }
    tally
}

/// Keeps `in_flight` requests outstanding on one stream until the budget
/// is spent and every request is answered or timed out.
async fn drive(
    session: usize,
    conn: &mut XmppConnection,
    opts: &Options,
    budget: &Budget,
    tally: &mut Tally,
    first_seq: u64,
) -> Result<(), XmppError> {
    // Sequence number → the request waiting for its answer.
    let mut outstanding: HashMap<u64, Outstanding> = HashMap::with_capacity(opts.in_flight);
    let mut next_seq = first_seq;
    let padding = "x".repeat(opts.size);
    // One target per slot: with `{k}` each request in flight is its own
    // conversation, otherwise they all share one.
    let targets: Vec<String> = (0..opts.in_flight)
        .map(|k| xmpp::escape(&opts.target_of(session, k)))
        .collect();
    let domain = xmpp::escape(&opts.domain);
    let mut out = String::with_capacity(4096);
    loop {
        while let Some(stanza) = conn.poll_element()? {
            handle_reply(&stanza, opts.mode, &mut outstanding, tally);
        }
        let now = Instant::now();
        outstanding.retain(|_, request| {
            let alive = now.duration_since(request.sent) < opts.timeout;
            if !alive {
                tally.timeouts += 1;
            }
            alive
        });
        while outstanding.len() < opts.in_flight && budget.take() {
            let seq = next_seq;
            next_seq += 1;
            match opts.mode {
                Mode::Ping => out.push_str(&format!(
                    "<iq type='get' id='p{seq}' to='{domain}'><ping xmlns='urn:xmpp:ping'/></iq>"
                )),
                _ => {
                    let target = &targets[(seq % opts.in_flight as u64) as usize];
                    let tag = format!("#{seq} ");
                    let pad = &padding[..opts.size.saturating_sub(tag.len())];
                    out.push_str(&format!(
                        "<message to='{target}' type='chat' id='m{seq}'><body>{tag}{pad}</body></message>"
                    ));
                }
            }
            outstanding.insert(seq, Outstanding::new(Instant::now()));
            tally.sent += 1;
        }
        if !out.is_empty() {
            conn.send(&out).await?;
            out.clear();
        }
        let Some(oldest) = outstanding.values().map(|request| request.sent).min() else {
            return Ok(());
        };
        // Wait for bytes, or until the oldest request times out.
        let _ = tokio::time::timeout_at((oldest + opts.timeout).into(), conn.fill()).await;
    }
}

/// A request waiting for its answer.
#[derive(Debug)]
struct Outstanding {
    /// When it was sent: every latency counts from here.
    sent: Instant,
    /// Streams: when the first message came, kept until the last does.
    first: Option<std::time::Duration>,
    /// Streams: messages received so far, to count what the user got.
    messages: u32,
    /// Streams: how many of them were corrections.
    corrections: u32,
}

impl Outstanding {
    fn new(sent: Instant) -> Outstanding {
        Outstanding {
            sent,
            first: None,
            messages: 0,
            corrections: 0,
        }
    }
}

/// Namespace of XEP-0308 corrections.
const NS_CORRECTION: &str = "urn:xmpp:message-correct:0";

/// Matches one incoming stanza to its request and records the outcome.
fn handle_reply(
    stanza: &Element,
    mode: Mode,
    outstanding: &mut HashMap<u64, Outstanding>,
    tally: &mut Tally,
) {
    let is_error = stanza.attr("type") == Some("error");
    let mut body = None;
    let seq = match (mode, stanza.name()) {
        (Mode::Ping, "iq") => stanza.attr("id").and_then(|id| seq_of_id(id, 'p')),
        (Mode::Message | Mode::Stream, "message") => {
            body = stanza
                .children()
                .find(|c| c.name() == "body")
                .map(Element::text);
            // The body's tag, so replies match whatever ids the bot gives them;
            // an error without the original body still carries our id.
            body.as_deref()
                .and_then(seq_in_body)
                .or_else(|| stanza.attr("id").and_then(|id| seq_of_id(id, 'm')))
        }
        // Presence and anything else: not an answer to us.
        _ => return,
    };
    let Some(seq) = seq.filter(|seq| outstanding.contains_key(seq)) else {
        tally.unmatched += 1;
        return;
    };
    if mode == Mode::Stream && !is_error {
        let Some(request) = outstanding.get_mut(&seq) else {
            return;
        };
        let elapsed = request.sent.elapsed();
        let first = *request.first.get_or_insert(elapsed);
        request.messages += 1;
        if stanza.get_child("replace", NS_CORRECTION).is_some() {
            request.corrections += 1;
        }
        // Only the message marked (n/n) ends the stream; a correction
        // carrying it is the final text.
        if body
            .as_deref()
            .and_then(stream_position)
            .is_some_and(|(k, n)| k == n)
        {
            let messages = request.messages;
            tally.corrections += u64::from(request.corrections);
            outstanding.remove(&seq);
            tally.record_stream(first, elapsed, messages);
        }
        return;
    }
    let Some(request) = outstanding.remove(&seq) else {
        return;
    };
    if is_error {
        tally.record_error(xmpp::error_condition(stanza));
    } else {
        tally.record(request.sent.elapsed());
    }
}

/// Where a streamed message stands in its stream: `(k, n)` from a body
/// ending in `(k/n)`, as the bench bot writes them.
pub fn stream_position(body: &str) -> Option<(u32, u32)> {
    let inner = body.trim_end().strip_suffix(')')?;
    let inner = &inner[inner.rfind('(')? + 1..];
    let (k, n) = inner.split_once('/')?;
    Some((k.parse().ok()?, n.parse().ok()?))
}

/// The sequence number in an id such as `p17`.
fn seq_of_id(id: &str, prefix: char) -> Option<u64> {
    id.strip_prefix(prefix)?.parse().ok()
}

/// The sequence tag `#17` anywhere in a body, e.g. "Did you say #17 xx?".
pub fn seq_in_body(body: &str) -> Option<u64> {
    let tail = &body[body.find('#')? + 1..];
    let digits = tail
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(tail.len());
    tail[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_tags_are_found_in_echoed_bodies() {
        assert_eq!(seq_in_body("Did you say #17 xxxx?"), Some(17));
        assert_eq!(seq_in_body("#0"), Some(0));
        assert_eq!(seq_in_body("no tag"), None);
        assert_eq!(seq_in_body("# 5"), None);
        assert_eq!(seq_of_id("p42", 'p'), Some(42));
        assert_eq!(seq_of_id("m42", 'p'), None);
    }

    #[test]
    fn stream_positions_are_read_from_the_end_of_a_body() {
        assert_eq!(stream_position("Did you say #3 xx? (1/20)"), Some((1, 20)));
        assert_eq!(stream_position("#3 (a) more more (20/20) "), Some((20, 20)));
        assert_eq!(stream_position("(1/20) and then text"), None);
        assert_eq!(stream_position("(x/20)"), None);
        assert_eq!(stream_position("no position"), None);
    }

    #[test]
    fn a_stream_completes_at_its_last_message_and_counts_corrections() {
        let mut outstanding = HashMap::new();
        outstanding.insert(5, Outstanding::new(Instant::now()));
        outstanding.insert(6, Outstanding::new(Instant::now()));
        let mut tally = Tally::default();
        let parse = |xml: &str| {
            Element::from_reader_with_prefixes(xml.as_bytes(), Some(xmpp::NS_CLIENT.to_owned()))
                .expect("valid stanza")
        };
        let first =
            parse("<message type='chat' id='a'><body>Did you say #5 x? (1/3)</body></message>");
        let typing = parse(
            "<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
        );
        let correction = |text: &str| {
            parse(&format!(
                "<message type='chat' id='b'><body>{text}</body>\
                 <replace xmlns='urn:xmpp:message-correct:0' id='a'/></message>"
            ))
        };
        handle_reply(&first, Mode::Stream, &mut outstanding, &mut tally);
        handle_reply(&typing, Mode::Stream, &mut outstanding, &mut tally);
        handle_reply(
            &correction("Did you say #5 x? more (2/3)"),
            Mode::Stream,
            &mut outstanding,
            &mut tally,
        );
        assert!(tally.latencies_us.is_empty(), "not done before (3/3)");
        assert_eq!(outstanding[&5].messages, 2);
        handle_reply(
            &correction("Did you say #5 x? more more (3/3)"),
            Mode::Stream,
            &mut outstanding,
            &mut tally,
        );
        assert!(!outstanding.contains_key(&5));
        assert_eq!(tally.latencies_us.len(), 1);
        assert_eq!(tally.first_latencies_us.len(), 1);
        assert!(tally.first_latencies_us[0] <= tally.latencies_us[0]);
        assert_eq!(tally.messages_per_request, vec![3]);
        assert_eq!(tally.corrections, 2);
        // The chat state matched nothing.
        assert_eq!(tally.unmatched, 1);
        // A stream that stops with an error is an error, not a stream.
        let error = parse(
            "<message type='error' id='m6'><error type='cancel'>\
             <internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        );
        handle_reply(&error, Mode::Stream, &mut outstanding, &mut tally);
        assert!(outstanding.is_empty());
        assert_eq!(tally.errors["cancel/internal-server-error"], 1);
        assert_eq!(tally.latencies_us.len(), 1);
    }

    #[test]
    fn the_budget_hands_out_exactly_its_count() {
        let budget = Budget::new(Some(3), None);
        let taken = (0..10).filter(|_| budget.take()).count();
        assert_eq!(taken, 3);
        let expired = Budget::new(None, Some(Duration::ZERO));
        assert!(!expired.take());
    }

    #[test]
    fn replies_and_errors_are_matched_to_requests() {
        let mut outstanding = HashMap::new();
        outstanding.insert(1, Outstanding::new(Instant::now()));
        outstanding.insert(2, Outstanding::new(Instant::now()));
        let mut tally = Tally::default();
        let parse = |xml: &str| {
            Element::from_reader_with_prefixes(xml.as_bytes(), Some(xmpp::NS_CLIENT.to_owned()))
                .expect("valid stanza")
        };
        let reply =
            parse("<message type='chat' id='other'><body>Did you say #1 x?</body></message>");
        handle_reply(&reply, Mode::Message, &mut outstanding, &mut tally);
        let error = parse(
            "<message type='error' id='m2'><error type='wait'>\
             <remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        );
        handle_reply(&error, Mode::Message, &mut outstanding, &mut tally);
        handle_reply(&reply, Mode::Message, &mut outstanding, &mut tally);
        assert!(outstanding.is_empty());
        assert_eq!(tally.latencies_us.len(), 1);
        assert_eq!(tally.errors["wait/remote-server-timeout"], 1);
        assert_eq!(tally.unmatched, 1);
    }
}
