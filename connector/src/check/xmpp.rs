//! The XMPP side: the component port answers, and the XEP-0114 handshake
//! succeeds, using the link's own handshake code.
//!
//! What the servers do (Prosody 0.12.3 and ejabberd 23.01, seen in this
//! repository's tests):
//! * unknown domain: Prosody `host-unknown` at once; ejabberd
//!   `not-authorized` after the handshake, the same as a wrong secret.
//! * the server's own host as the component domain: ejabberd `conflict`
//!   ("Unable to register route on existing local domain"); Prosody
//!   `host-unknown`.
//! * the client port (5222) instead of the component port: Prosody
//!   `host-unknown` ("This server does not serve …"), ejabberd
//!   `invalid-namespace`.
//! * wrong secret: `not-authorized` on both, checked before anything else.
//! * a connector already linked: Prosody checks the secret, then answers
//!   `conflict` ("Component already connected"), so the running connector
//!   keeps its link. Its option `component_conflict_resolve = "kick_old"`
//!   would instead hand the link to the newcomer. ejabberd accepts the
//!   second link and shares the component's stanzas between the two: the
//!   check cannot see a running connector there, and its own link lives
//!   for one round trip.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::time::timeout;
use xmpp_lambda_shared::COMPONENT_NS;

use super::report::{Outcome, human};
use crate::config::Config;
use xmpp_lambda_component::{HANDSHAKE_TIMEOUT, LinkError, LinkSettings, Read, StreamError};

/// How long the name lookup may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one TCP connect may take (the link waits as long).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the server to close its side after ours.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the component port is configured, for the fixes.
const PORT_HELP: &str = "Prosody: component_ports and component_interface (127.0.0.1 \
                         unless set); ejabberd: a listener with module ejabberd_service";

/// Resolves `server` (`host:port`) and opens a TCP connection to the first
/// address that takes one; the connection is handed to the handshake.
pub async fn server(server: &str) -> (Outcome, Option<TcpStream>) {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    let addresses: Vec<SocketAddr> =
        match timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(server)).await {
            Ok(Ok(addresses)) => addresses.collect(),
            Ok(Err(e)) => {
                return (
                    Outcome::fail(
                        format!("cannot resolve {host}: {e}"),
                        "check the host name in COMPONENT_SERVER (DNS, or /etc/hosts on \
                         this machine)",
                    ),
                    None,
                );
            }
            Err(_) => {
                return (
                    Outcome::fail(
                        format!(
                            "resolving {host} took longer than {}",
                            human(RESOLVE_TIMEOUT)
                        ),
                        "check this machine's DNS servers (/etc/resolv.conf)",
                    ),
                    None,
                );
            }
        };
    if addresses.is_empty() {
        return (
            Outcome::fail(
                format!("{host} resolves to no address"),
                "give the host name an address in DNS, or use an IP address in COMPONENT_SERVER",
            ),
            None,
        );
    }
    let mut refusals = Vec::new();
    for address in &addresses {
        let started = Instant::now();
        match timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(connection)) => {
                let resolved = if host.parse::<std::net::IpAddr>().is_ok()
                    || host
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok()
                {
                    String::new()
                } else {
                    format!(" ({host} is {})", address.ip())
                };
                return (
                    Outcome::Pass(format!(
                        "{server} takes TCP connections{resolved}, in {}",
                        human(started.elapsed())
                    )),
                    Some(connection),
                );
            }
            Ok(Err(e)) => refusals.push(format!("{address}: {e}")),
            Err(_) => refusals.push(format!(
                "{address}: no answer within {} (a firewall dropping packets, or the \
                 host is down)",
                human(CONNECT_TIMEOUT)
            )),
        }
    }
    (
        Outcome::fail(
            format!("nothing takes TCP connections at {}", refusals.join(", ")),
            format!(
                "start the XMPP server, or correct COMPONENT_SERVER: it must be the server's \
                 component port, reachable from here ({PORT_HELP})"
            ),
        ),
        None,
    )
}

/// Opens the component stream on `connection`, performs the handshake with
/// the link's own code and closes the stream again at once.
pub async fn handshake(connection: TcpStream, config: &Config) -> Outcome {
    let domain = &config.component_domain;
    let settings = LinkSettings {
        domain: domain.clone(),
        secret: config.component_secret.clone(),
        server: config.component_server.clone(),
        ping_interval: config.ping_interval,
    };
    let attempt = timeout(
        HANDSHAKE_TIMEOUT,
        xmpp_lambda_component::handshake(connection, &settings),
    )
    .await
    .unwrap_or(Err(LinkError::TimedOut("waiting for the handshake")));
    match attempt {
        Ok(mut stream) => {
            let linked_at = Instant::now();
            // Our stream footer first, then whatever the server still says
            // until it closes its side.
            let closed = timeout(CLOSE_TIMEOUT, stream.close()).await;
            let mut stanzas = 0;
            if matches!(closed, Ok(Ok(()))) {
                // Whether the server closes its side in time or not, the
                // check is done with the link either way.
                let _ = timeout(CLOSE_TIMEOUT, async {
                    loop {
                        match stream.next().await {
                            Ok(Read::Element(element)) if element.ns() == COMPONENT_NS => {
                                stanzas += 1;
                            }
                            Ok(Read::Skipped { .. }) => stanzas += 1,
                            Ok(Read::Element(_) | Read::Silent) => {}
                            Ok(Read::Closed) | Err(_) => break,
                        }
                    }
                })
                .await;
            }
            let mut text = format!(
                "accepted for {domain} (the secret is right and the server knows the \
                 component), link closed again after {}",
                human(linked_at.elapsed())
            );
            if stanzas > 0 {
                text.push_str(&format!(
                    "; {stanzas} stanza(s) for the component reached this short link and were \
                     not answered"
                ));
            } else {
                text.push_str(
                    "; no other connector is linked, or the server accepts several links at \
                     once (ejabberd does, and shares stanzas between them)",
                );
            }
            Outcome::Pass(text)
        }
        Err(LinkError::Rejected(error)) => rejected(&error, domain),
        Err(LinkError::TimedOut(_)) => Outcome::fail(
            format!(
                "something takes TCP connections at {} but gave no handshake answer within {}",
                config.component_server,
                human(HANDSHAKE_TIMEOUT)
            ),
            format!("COMPONENT_SERVER must be the XMPP server's component port ({PORT_HELP})"),
        ),
        Err(error) => Outcome::fail(
            format!("no handshake: {error}"),
            format!(
                "COMPONENT_SERVER must be the XMPP server's component port, not its client \
                 port (5222) or another service ({PORT_HELP})"
            ),
        ),
    }
}

/// The server refused the handshake (or the stream before it).
fn rejected(error: &StreamError, domain: &str) -> Outcome {
    let text = error.text.as_deref().unwrap_or("");
    match error.condition.as_str() {
        // ejabberd, when the component domain is one of its own hosts.
        "conflict" if text.contains("local domain") => Outcome::fail(
            format!("{domain} is a host the server serves itself ({error})"),
            format!(
                "give the component a domain of its own, e.g. bot.{domain}, declare it as a \
                 component on the server and set COMPONENT_JID to it"
            ),
        ),
        // Prosody, after checking the secret: its default
        // component_conflict_resolve ("kick_new") keeps the running link.
        "conflict" => Outcome::Pass(format!(
            "secret accepted; another connector is linked ({error}), and keeps its link"
        )),
        // Prosody's client port, refusing a stream to a domain it does not host.
        "host-unknown" if text.contains("does not serve") => Outcome::fail(
            format!("the server answered as on its client port ({error})"),
            format!(
                "COMPONENT_SERVER must be the component port, not the client port (5222) \
                 ({PORT_HELP})"
            ),
        ),
        "host-unknown" => Outcome::fail(
            format!("the server has no component {domain} ({error})"),
            format!(
                "declare it on the server and restart or reload it: Prosody: Component \
                 \"{domain}\" with component_secret; ejabberd: \"{domain}\" under the hosts of \
                 the ejabberd_service listener"
            ),
        ),
        "not-authorized" => Outcome::fail(
            format!("the server refused the handshake ({error})"),
            format!(
                "COMPONENT_SECRET must be the component's secret on the server (Prosody: \
                 component_secret of Component \"{domain}\"; ejabberd: its password under the \
                 ejabberd_service listener's hosts). ejabberd also answers not-authorized when \
                 \"{domain}\" is not among those hosts"
            ),
        ),
        "invalid-namespace" => Outcome::fail(
            format!("the server refused the component stream ({error})"),
            format!(
                "COMPONENT_SERVER looks like the client port (5222): use the component port \
                 ({PORT_HELP})"
            ),
        ),
        _ => Outcome::fail(
            format!("the server refused the handshake ({error})"),
            "see the XMPP server's log for why",
        ),
    }
}
