//! Records what real servers send on a component stream, for the stream
//! target's corpus: Prosody 0.12 and ejabberd 23.01 (Debian's), a
//! component linked through a recording TCP proxy, and real clients
//! (slixmpp) sending messages with extensions, presence, IQs and group
//! chat. `make fuzz-capture` runs it and writes
//! `fuzz/captures/<server>.xml`, the bytes the server sent, as sent.

use minidom::Element;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use xmpp_lambda_component::{LinkSettings, Read, Secret, connect};
use xmpp_lambda_tests::muc::join_room;
use xmpp_lambda_tests::{Ejabberd, Prosody, XmppClient, XmppServer};

/// How long the component waits for the traffic to arrive.
const TRAFFIC_WAIT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() {
    let prosody = Prosody::start_with_config("muc_room_locking = false")
        .await
        .expect("Prosody");
    capture(&prosody, "prosody").await;
    drop(prosody);
    let ejabberd = Ejabberd::start().await.expect("ejabberd");
    capture(&ejabberd, "ejabberd").await;
}

/// Forwards one connection from a port of its own to `server`, keeping a
/// copy of every byte the server sends.
async fn recording_proxy(server: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let copy = Arc::clone(&recorded);
    tokio::spawn(async move {
        let (component, _) = listener.accept().await.expect("accept");
        let upstream = TcpStream::connect(("127.0.0.1", server))
            .await
            .expect("the server's component port");
        let (mut from_component, mut to_server) = (component.into_split(), upstream.into_split());
        let outward = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_component.0, &mut to_server.1).await;
            let _ = to_server.1.shutdown().await;
        });
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match to_server.0.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            copy.lock()
                .expect("recording")
                .extend_from_slice(&buffer[..n]);
            if from_component.1.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        outward.abort();
    });
    (port, recorded)
}

async fn capture(server: &impl XmppServer, name: &str) {
    let (proxy, recorded) = recording_proxy(server.component_port()).await;
    let domain = server.component_domain().to_owned();
    let settings = LinkSettings {
        domain: domain.clone(),
        secret: Secret::new(server.secret()),
        server: format!("127.0.0.1:{proxy}"),
        ping_interval: Duration::from_secs(60),
    };
    let mut stream = connect(&settings).await.expect("linked through the proxy");
    let room = format!("fuzz@{}", server.muc_domain());
    // The component joins the room, so the room's traffic reaches it.
    let join: Element = format!(
        "<presence xmlns='jabber:component:accept' from='rooms@{domain}/bot' to='{room}/bot'>\
         <x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='0'/></x></presence>"
    )
    .parse()
    .expect("presence");
    let alice = server.register("alice", "pw").await.expect("alice");
    let bob = server.register("bob", "pw").await.expect("bob");
    let mut alice = XmppClient::connect("127.0.0.1", server.c2s_port(), &alice, "pw")
        .await
        .expect("alice online");
    let mut bob = XmppClient::connect("127.0.0.1", server.c2s_port(), &bob, "pw")
        .await
        .expect("bob online");
    join_room(&mut alice, &room, "alice").await.expect("room");
    stream.queue(&join);
    stream.flush().await.expect("join");
    join_room(&mut bob, &room, "bob").await.expect("room");
    let bot = format!("echo@{domain}");
    for stanza in traffic(&bot, &domain, &room) {
        alice.send(&stanza).await.expect("send");
    }
    bob.send(&format!(
        "<message to='{room}' type='groupchat' id='g-bob'><body>bot: ¿qué tal? 😀</body>\
         <markable xmlns='urn:xmpp:chat-markers:0'/></message>"
    ))
    .await
    .expect("send");
    // Last, on the session that sent the rest: what tells the component
    // it has everything.
    alice
        .send(&format!(
            "<message to='{bot}' type='chat' id='done'><body>done</body></message>"
        ))
        .await
        .expect("send");
    let deadline = Instant::now() + TRAFFIC_WAIT;
    let mut seen = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let read = match tokio::time::timeout(left, stream.next()).await {
            Ok(read) => read.expect("the stream reads"),
            Err(_) => panic!("{name}: no `done` within {TRAFFIC_WAIT:?} ({seen} stanzas)"),
        };
        let Read::Element(stanza) = read else {
            continue;
        };
        seen += 1;
        if stanza.attr("id") == Some("done") {
            break;
        }
        // Every IQ request gets its answer, as a component must give.
        if stanza.name() == "iq" && matches!(stanza.attr("type"), Some("get" | "set")) {
            let answer = Element::builder("iq", "jabber:component:accept")
                .attr(xmpp_lambda_shared::attribute_name("type"), "result")
                .attr(
                    xmpp_lambda_shared::attribute_name("id"),
                    stanza.attr("id").unwrap_or(""),
                )
                .attr(
                    xmpp_lambda_shared::attribute_name("from"),
                    stanza.attr("to").unwrap_or(""),
                )
                .attr(
                    xmpp_lambda_shared::attribute_name("to"),
                    stanza.attr("from").unwrap_or(""),
                )
                .build();
            stream.queue(&answer);
            stream.flush().await.expect("answer");
        }
    }
    let _ = stream.close().await;
    drop(stream);
    let bytes = recorded.lock().expect("recording").clone();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("captures")
        .join(format!("{name}.xml"));
    std::fs::create_dir_all(path.parent().expect("a folder")).expect("captures/");
    std::fs::write(&path, &bytes).expect("write the capture");
    eprintln!(
        "{name}: {seen} stanzas, {} bytes → {}",
        bytes.len(),
        path.display()
    );
    assert!(
        seen >= 20,
        "{name}: only {seen} stanzas reached the component"
    );
}

/// What a client sends to the component: messages with the extensions
/// clients use, text that needs escaping, presence, IQs, and group chat.
fn traffic(bot: &str, domain: &str, room: &str) -> Vec<String> {
    let long: String = (0..200).map(|n| format!("line {n} <&>\"' ")).collect();
    vec![
        format!(
            "<message to='{bot}' type='chat' id='m1' xml:lang='en'><body>Hello &amp; welcome &lt;3 &#x1F600; &quot;quoted&quot; 'single'</body>\
         <active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>\
         <markable xmlns='urn:xmpp:chat-markers:0'/><origin-id xmlns='urn:xmpp:sid:0' id='o1'/></message>"
        ),
        format!(
            "<message to='{bot}' type='chat' id='m2'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
        ),
        format!(
            "<message to='{bot}' type='chat' id='m3'><body>multi\nline\r\ntext\twith tab</body><thread>t-1</thread>\
         <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>Hi <strong>there</strong><br/>again</p></body></html></message>"
        ),
        format!(
            "<message to='{bot}' type='chat' id='m4'><body>https://example.com/a.png</body><x xmlns='jabber:x:oob'><url>https://example.com/a.png?x=1&amp;y=2</url></x></message>"
        ),
        format!(
            "<message to='{bot}' type='chat' id='m5'><body>{}</body></message>",
            xmpp_lambda_tests::escape_xml(&long)
        ),
        format!(
            "<message to='{bot}' type='chat' id='m6'><body>corrected</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/></message>"
        ),
        format!(
            "<message to='{bot}' id='m7'><body>normal, no type</body><p:ext xmlns:p='urn:example:prefixed' p:attr='v' other='w'><p:inner>x</p:inner></p:ext></message>"
        ),
        format!(
            "<message to='{bot}' type='chat' id='m8' xml:lang='de'><body xml:lang='de'>Grüße</body><body xml:lang='fr'>Salut</body><subject>Betreff</subject></message>"
        ),
        format!(
            "<message to='{bot}' type='chat' id='m9'><body><![CDATA[<not> markup & ]]></body></message>"
        ),
        format!(
            "<message to='{bot}' type='chat' id='m10'><body/><received xmlns='urn:xmpp:receipts' id='m0'/><displayed xmlns='urn:xmpp:chat-markers:0' id='m0'/></message>"
        ),
        format!("<presence to='{bot}' type='subscribe' id='p1'/>"),
        format!("<presence to='{bot}' type='probe' id='p2'/>"),
        format!(
            "<presence to='{bot}/res'><show>away</show><status>out ☕</status><priority>5</priority>\
         <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.com' ver='abc='/></presence>"
        ),
        format!("<presence to='{bot}' type='unsubscribe' id='p3'/>"),
        format!(
            "<iq to='{domain}' type='get' id='q1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        ),
        format!("<iq to='{bot}' type='get' id='q2'><query xmlns='jabber:iq:version'/></iq>"),
        format!("<iq to='{bot}' type='get' id='q3'><ping xmlns='urn:xmpp:ping'/></iq>"),
        format!(
            "<iq to='{bot}' type='set' id='q4'><command xmlns='http://jabber.org/protocol/commands' node='run' action='execute'>\
         <x xmlns='jabber:x:data' type='submit'><field var='a' type='text-single'><value>1 &lt; 2</value></field></x></command></iq>"
        ),
        format!(
            "<message to='{room}' type='groupchat' id='g1'><body>bot: hello room</body></message>"
        ),
        format!(
            "<message to='{room}' type='groupchat' id='g2'><subject>A new subject</subject></message>"
        ),
        format!(
            "<message to='{room}/bot' type='chat' id='g3'><body>a private word</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>"
        ),
        format!(
            "<message to='{room}'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='{bot}'><reason>join us</reason></invite></x></message>"
        ),
        format!(
            "<message to='{bot}' type='chat' id='g4'><x xmlns='jabber:x:conference' jid='{room}' reason='direct'/></message>"
        ),
        format!(
            "<message to='{bot}' type='error' id='e1'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        ),
    ]
}
