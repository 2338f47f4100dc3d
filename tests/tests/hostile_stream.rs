//! The connector's stream reader against hostile byte streams from a fake
//! XMPP server: malformed XML, a 50 MB stanza, deep nesting, entity tricks
//! and elements that never end. Each time the connector must not panic,
//! must say why in its log and must keep its memory bounded. A stanza past
//! a read limit is skipped as it comes: its sender gets an error and the
//! link serves the next stanza. XML that is not well-formed ends the link:
//! the connector reconnects and serves the next stanza on the new one.
//! Each test prints a `bad input:` line with the bytes fed and the
//! connector's peak memory.

use std::time::Duration;

use xmpp_lambda_tests::{
    BotRequest, BotServer, Connector, FakeComponentServer, FakeLink, Result, echo_reply,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(20);
/// The component domain the fake server serves.
const DOMAIN: &str = "bot.localhost";
/// The connector's read limits (connector/src/link/read_limit.rs).
const MAX_STANZA_BYTES: usize = 1024 * 1024;
const MAX_STANZA_MARKUP: usize = 8 * 1024;
const MAX_STANZA_DEPTH: usize = 128;
/// The opening of a message from a user to the bot, as a server writes it.
const MESSAGE_HEAD: &str =
    "<message from='alice@localhost/x' to='echo@bot.localhost' type='chat' id='m1'>";
/// A 50 MB stanza is dropped as it comes, long before this much memory is
/// used; the connector idles at about 10 MiB.
const FLOOD_PEAK_LIMIT_KIB: u64 = 48 * 1024;

/// A fake server, the echo bot, and the connector linked to both.
struct Rig {
    server: FakeComponentServer,
    /// Kept for its `Drop`, and to look at the requests it got.
    bot: BotServer,
    connector: Connector,
}

impl Rig {
    /// Starts everything and returns the connector's first link.
    async fn start(extra_env: &[(&str, &str)]) -> Result<(Rig, FakeLink)> {
        let mut server = FakeComponentServer::start(DOMAIN).await?;
        let bot = BotServer::start(|request: BotRequest| async move { echo_reply(&request.json) })
            .await?;
        let bot_url = bot.url();
        let component_env = server.component_env()?;
        let mut env: Vec<(&str, &str)> = component_env
            .iter()
            .map(|(key, value)| (*key, value.as_str()))
            .collect();
        env.push(("COMPONENT_POST_URL", &bot_url));
        env.extend_from_slice(extra_env);
        let connector = Connector::start(&env).await?;
        let link = server.accept_link(WAIT).await?;
        Ok((
            Rig {
                server,
                bot,
                connector,
            },
            link,
        ))
    }

    /// Where the connector's log is now: lines after it are new.
    fn mark(&self) -> usize {
        self.connector.logs().len()
    }

    /// After a hostile stream on `link`: the connector closes it, logs (after
    /// `mark`) a line containing `lost` and `reason`, is still running, links
    /// again and answers a message on the new link, which it returns.
    async fn assert_recovers(
        &mut self,
        link: &mut FakeLink,
        mark: usize,
        lost: &str,
        reason: &str,
    ) -> Result<FakeLink> {
        link.wait_closed(WAIT).await?;
        let line = self.connector.wait_for_log_from(mark, reason, WAIT).await?;
        assert!(line.contains(lost), "{line}");
        eprintln!("the connector said: {line}");
        assert!(
            self.connector.try_exit_status().is_none(),
            "the connector exited"
        );
        let mut next = self.server.accept_link(WAIT).await?;
        assert_answers(&mut next, "still there?").await?;
        assert!(
            !self.connector.logs().iter().any(|l| l.contains("panicked")),
            "the connector panicked: {:?}",
            self.connector.logs()
        );
        Ok(next)
    }

    /// The connector's peak resident memory so far, in KiB.
    fn peak_kib(&self) -> Result<u64> {
        Ok(self
            .connector
            .memory()
            .ok_or("the connector is not running")?
            .peak_kib)
    }
}

/// Sends a message on `link` and waits for the echo bot's reply.
async fn assert_answers(link: &mut FakeLink, text: &str) -> Result<()> {
    link.send(format!("{MESSAGE_HEAD}<body>{text}</body></message>").as_bytes())
        .await?;
    let reply = link
        .wait_for(&format!("Did you say {text}?</body></message>"), WAIT)
        .await?;
    assert!(
        reply.contains("from=\"echo@bot.localhost\"")
            || reply.contains("from='echo@bot.localhost'"),
        "{reply}"
    );
    Ok(())
}

/// Sends `prefix`, `filler` repeated to `total` bytes, then `suffix`; the
/// connector must take it all.
async fn send_long(
    link: &mut FakeLink,
    prefix: &[u8],
    filler: &[u8],
    total: usize,
    suffix: &[u8],
) -> Result<usize> {
    // Whole fillers in each write, so none is cut where a write ends.
    let chunk = filler.repeat((64 * 1024 / filler.len()).max(1));
    let mut sent = 0;
    let sending = async {
        link.send(prefix).await?;
        while sent < total {
            link.send(&chunk).await?;
            sent += chunk.len();
        }
        link.send(suffix).await
    };
    tokio::time::timeout(WAIT, sending)
        .await
        .map_err(|_| "the connector stopped reading")??;
    Ok(prefix.len() + sent + suffix.len())
}

impl Rig {
    /// After a stanza past a limit on `link`: the connector logs (after
    /// `mark`) that it skipped it for `reason`, the sender of `id` (if
    /// any) gets `modify/policy-violation`, and the same link answers the
    /// next message. Nothing reached the bot.
    async fn assert_skipped(
        &self,
        link: &mut FakeLink,
        mark: usize,
        id: Option<&str>,
        reason: &str,
    ) -> Result<()> {
        let requests = self.bot.requests().len();
        let line = self
            .connector
            .wait_for_log_from(mark, &format!("stanza skipped: {reason}"), WAIT)
            .await?;
        eprintln!("the connector said: {line}");
        if let Some(id) = id {
            let sent = link
                .wait_for("The stanza is too large for the bot", WAIT)
                .await?;
            let error = &sent[sent.rfind("<message").unwrap_or(0)..];
            assert!(error.contains("type='error'"), "{error}");
            assert!(error.contains(&format!("id='{id}'")), "{error}");
            assert!(error.contains("<policy-violation"), "{error}");
        }
        assert_answers(link, "still there?").await?;
        assert_eq!(
            self.bot.requests().len(),
            requests + 1,
            "only the next message"
        );
        assert!(
            !self
                .connector
                .logs()
                .iter()
                .any(|l| l.contains("component link lost")),
            "the link was dropped: {:?}",
            self.connector.logs()
        );
        Ok(())
    }
}

/// Prints the figures of one test for the book (docs/src/reliability.md).
fn report(case: &str, fed: usize, peak_kib: u64) {
    eprintln!("bad input: {case}: {fed} bytes fed, connector peak RSS {peak_kib} KiB");
}

#[tokio::test]
async fn malformed_xml_ends_the_link_and_the_connector_links_again() -> Result<()> {
    let (mut rig, mut link) = Rig::start(&[]).await?;
    let cases: [&[u8]; 3] = [
        // A mismatched end tag, after a good stanza in the same write.
        b"<message from='alice@localhost/x' to='echo@bot.localhost' id='ok'><body>first</body></message>\
          <message from='alice@localhost/x' to='echo@bot.localhost'><body>x</bdy></message>",
        // Bytes that are not UTF-8.
        b"<message from='alice@localhost/x' to='echo@bot.localhost'><body>\xff\xfe\xc0\x80</body></message>",
        // Text where only stanzas may be.
        b"this is not a stanza",
    ];
    let mut fed = 0;
    for (n, bytes) in cases.iter().enumerate() {
        let mark = rig.mark();
        link.send(bytes).await?;
        fed += bytes.len();
        if n == 0 {
            // The stanza before the broken one still reaches the bot.
            let requests = rig.bot.wait_for_requests(1, WAIT).await?;
            assert_eq!(requests[0].json["body"], "first");
        }
        link = rig
            .assert_recovers(&mut link, mark, "component link lost", "cause=")
            .await?;
    }
    report("malformed XML (3 streams)", fed, rig.peak_kib()?);
    Ok(())
}

#[tokio::test]
async fn a_50_mb_stanza_is_skipped_as_it_comes_and_its_sender_told() -> Result<()> {
    let (rig, mut link) = Rig::start(&[]).await?;
    let mark = rig.mark();
    let fed = send_long(
        &mut link,
        format!("{MESSAGE_HEAD}<body>").as_bytes(),
        b"0123456789abcdef",
        50 * 1024 * 1024,
        b"</body></message>",
    )
    .await?;
    rig.assert_skipped(
        &mut link,
        mark,
        Some("m1"),
        &format!("larger than the read limit of {MAX_STANZA_BYTES} bytes"),
    )
    .await?;
    let peak = rig.peak_kib()?;
    report("a 50 MB stanza", fed, peak);
    assert!(peak < FLOOD_PEAK_LIMIT_KIB, "peak RSS {peak} KiB");
    Ok(())
}

#[tokio::test]
async fn long_start_tags_are_skipped() -> Result<()> {
    let (rig, mut link) = Rig::start(&[]).await?;
    let total = 20 * 1024 * 1024;
    // (start, filler, end, why it is skipped)
    type LongTag = (&'static [u8], &'static [u8], &'static [u8], String);
    let cases: [LongTag; 2] = [
        // An attribute value of 20 MB: the stanza size limit, before its
        // start tag ended, so there are no addresses to answer.
        (
            b"<message from='alice@localhost/x' a='",
            b"0123456789abcdef",
            b"'/>",
            format!("larger than the read limit of {MAX_STANZA_BYTES} bytes"),
        ),
        // Attributes for 20 MB.
        (
            b"<message from='alice@localhost/x' ",
            b"a='b' ",
            b"/>",
            format!("more than {MAX_STANZA_MARKUP} elements and attributes"),
        ),
    ];
    let mut fed = 0;
    for (prefix, filler, suffix, reason) in &cases {
        let mark = rig.mark();
        fed += send_long(&mut link, prefix, filler, total, suffix).await?;
        rig.assert_skipped(&mut link, mark, None, reason).await?;
    }
    let peak = rig.peak_kib()?;
    report("long start tags (2 of 20 MB)", fed, peak);
    assert!(peak < FLOOD_PEAK_LIMIT_KIB, "peak RSS {peak} KiB");
    Ok(())
}

#[tokio::test]
async fn nesting_is_read_up_to_the_depth_limit_and_skipped_past_it() -> Result<()> {
    let (rig, mut link) = Rig::start(&[]).await?;
    // The message element and 127 more levels: read and handed to the bot.
    let inner = MAX_STANZA_DEPTH - 1;
    let at_limit = format!(
        "{MESSAGE_HEAD}<body>deep</body>{}{}</message>",
        "<x xmlns='urn:deep'>".repeat(inner),
        "</x>".repeat(inner)
    );
    link.send(at_limit.as_bytes()).await?;
    let requests = rig.bot.wait_for_requests(1, WAIT).await?;
    assert_eq!(requests[0].json["body"], "deep");
    link.wait_for("Did you say deep?", WAIT).await?;

    // 100,000 levels: skipped from level 129 on, and followed to its end.
    let mark = rig.mark();
    let deep = format!(
        "{MESSAGE_HEAD}{}{}</message>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    link.send(deep.as_bytes()).await?;
    rig.assert_skipped(
        &mut link,
        mark,
        Some("m1"),
        &format!("nested deeper than the limit of {MAX_STANZA_DEPTH}"),
    )
    .await?;
    let peak = rig.peak_kib()?;
    report(
        "nesting 128 deep, then 100,000 deep",
        at_limit.len() + deep.len(),
        peak,
    );
    assert!(peak < FLOOD_PEAK_LIMIT_KIB, "peak RSS {peak} KiB");
    Ok(())
}

/// The billion laughs: ten entities, each ten of the one before.
fn billion_laughs() -> String {
    let mut dtd = String::from("<!DOCTYPE lolz [<!ENTITY lol0 \"lol\">");
    for n in 1..10 {
        let previous = format!("&lol{};", n - 1).repeat(10);
        dtd.push_str(&format!("<!ENTITY lol{n} \"{previous}\">"));
    }
    dtd.push_str("]>");
    dtd
}

#[tokio::test]
async fn entity_tricks_are_refused_and_the_connector_links_again() -> Result<()> {
    let (mut rig, mut link) = Rig::start(&[]).await?;
    let cases = [
        // A DTD with the billion laughs in the middle of the stream.
        format!(
            "{}{MESSAGE_HEAD}<body>&lol9;</body></message>",
            billion_laughs()
        ),
        // An entity nobody declared (an external one, XXE-style).
        format!("{MESSAGE_HEAD}<body>&xxe;</body></message>"),
        // A character reference to a character XML forbids.
        format!("{MESSAGE_HEAD}<body>&#0;</body></message>"),
    ];
    let mut fed = 0;
    for case in &cases {
        let mark = rig.mark();
        link.send(case.as_bytes()).await?;
        fed += case.len();
        link = rig
            .assert_recovers(&mut link, mark, "component link lost", "cause=")
            .await?;
    }
    // The bot only ever got the messages sent after each relink.
    let bodies: Vec<String> = rig
        .bot
        .requests()
        .iter()
        .map(|r| r.json["body"].to_string())
        .collect();
    assert_eq!(bodies, vec!["\"still there?\""; 3]);
    report("entity tricks (3 streams)", fed, rig.peak_kib()?);
    Ok(())
}

#[tokio::test]
async fn a_dtd_in_place_of_the_stream_header_fails_the_handshake() -> Result<()> {
    let (mut rig, link) = Rig::start(&[]).await?;
    // The server drops the first link; the next one gets the DTD.
    drop(link);
    let mut raw = rig.server.accept_raw(WAIT).await?;
    let mark = rig.mark();
    let header = format!(
        "<?xml version='1.0'?>{}<stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' id='x' from='{DOMAIN}'>",
        billion_laughs()
    );
    raw.send(header.as_bytes()).await?;
    rig.assert_recovers(&mut raw, mark, "component link failed", "cause=")
        .await?;
    report(
        "a DTD before the stream header",
        header.len(),
        rig.peak_kib()?,
    );
    Ok(())
}

#[tokio::test]
async fn an_element_that_never_ends_times_out_and_the_connector_links_again() -> Result<()> {
    // Pings every second: a read stalls for two seconds at most.
    let (mut rig, mut link) = Rig::start(&[("COMPONENT_PING_INTERVAL", "1")]).await?;
    let mark = rig.mark();
    let head = format!("{MESSAGE_HEAD}<body>and then nothing");
    link.send(head.as_bytes()).await?;
    rig.assert_recovers(&mut link, mark, "component link lost", "read timeout")
        .await?;
    report("an element that never ends", head.len(), rig.peak_kib()?);
    Ok(())
}

#[tokio::test]
async fn the_largest_stanzas_the_limits_allow_are_delivered() -> Result<()> {
    let (rig, mut link) = Rig::start(&[]).await?;
    let start = rig.peak_kib()?;
    // One body as long as the byte limit allows.
    let room = MAX_STANZA_BYTES - MESSAGE_HEAD.len() - "<body></body></message>".len();
    let long = format!("{MESSAGE_HEAD}<body>{}</body></message>", "b".repeat(room));
    assert_eq!(long.len(), MAX_STANZA_BYTES);
    link.send(long.as_bytes()).await?;
    let requests = rig.bot.wait_for_requests(1, WAIT).await?;
    assert_eq!(requests[0].json["body"].as_str().map(str::len), Some(room));
    let after_long = rig.peak_kib()?;
    // As many empty elements as the markup limit allows: the message, its
    // four attributes and the body are six.
    let count = MAX_STANZA_MARKUP - 6;
    let wide = |count: usize| {
        format!(
            "{MESSAGE_HEAD}<body>x</body>{}</message>",
            "<e/>".repeat(count)
        )
    };
    link.send(wide(count).as_bytes()).await?;
    let requests = rig.bot.wait_for_requests(2, WAIT).await?;
    assert_eq!(requests[1].json["body"], "x");
    assert_eq!(
        requests[1].json["stanza"]
            .as_str()
            .map(|s| s.matches("<e").count()),
        Some(count)
    );
    link.wait_for("Did you say x?", WAIT).await?;
    let after_wide = rig.peak_kib()?;
    // One more is skipped, and its sender told.
    let mark = rig.mark();
    link.send(wide(count + 1).as_bytes()).await?;
    rig.assert_skipped(
        &mut link,
        mark,
        Some("m1"),
        &format!("more than {MAX_STANZA_MARKUP} elements and attributes"),
    )
    .await?;
    eprintln!(
        "bad input: connector peak RSS {start} KiB at start, {after_long} KiB after a \
         {MAX_STANZA_BYTES}-byte body, {after_wide} KiB after {count} empty elements"
    );
    report(
        "the largest stanzas, and one element too many",
        long.len() + wide(count).len() + wide(count + 1).len(),
        rig.peak_kib()?,
    );
    assert!(
        after_wide < FLOOD_PEAK_LIMIT_KIB,
        "peak RSS {after_wide} KiB"
    );
    Ok(())
}

/// How long the connector gives a server for its stream header and the
/// handshake (connector/src/link.rs), however the bytes come.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The connector's clock starts when its connection is made; the test's
/// when `accept` returns, which on a busy machine can be tens of
/// milliseconds later (58 ms seen in CI).
const ACCEPT_LAG: Duration = Duration::from_millis(500);

#[tokio::test]
async fn a_server_that_trickles_its_header_is_given_up_on_at_the_handshake_timeout() -> Result<()> {
    let (mut rig, link) = Rig::start(&[]).await?;
    drop(link);
    // A byte of a valid stream header every 200 ms: never a handshake.
    let mut raw = rig.server.accept_raw(WAIT).await?;
    let accepted = tokio::time::Instant::now();
    let mark = rig.mark();
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' id='slow' from='{DOMAIN}'>"
    );
    let trickle = async {
        for byte in header.as_bytes() {
            if raw.send(std::slice::from_ref(byte)).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let given_up =
        rig.connector
            .wait_for_log_from(mark, "timed out waiting for the handshake", WAIT + WAIT);
    let (_, given_up) = tokio::join!(trickle, given_up);
    let line = given_up?;
    let waited = accepted.elapsed();
    eprintln!("the connector said after {waited:?}: {line}");
    assert!(
        waited >= HANDSHAKE_TIMEOUT - ACCEPT_LAG
            && waited < HANDSHAKE_TIMEOUT + Duration::from_secs(3),
        "gave up after {waited:?}"
    );
    // A server that accepts and never says anything: the same.
    let mut silent = rig.server.accept_raw(WAIT).await?;
    let accepted = tokio::time::Instant::now();
    let mark = rig.mark();
    rig.connector
        .wait_for_log_from(mark, "timed out waiting for the handshake", WAIT + WAIT)
        .await?;
    let waited = accepted.elapsed();
    assert!(
        waited >= HANDSHAKE_TIMEOUT - ACCEPT_LAG,
        "gave up after {waited:?}"
    );
    silent.wait_closed(WAIT).await?;
    // Then a good server gets the link.
    let mut next = rig.server.accept_link(WAIT).await?;
    assert_answers(&mut next, "back").await?;
    Ok(())
}
