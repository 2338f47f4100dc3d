//! Group chats (DESIGN §7) end to end: the connector joins real rooms on
//! Prosody's MUC and ejabberd's mod_muc, and real users talk to the bot
//! there. The bot is the reference echo bot unless a test says otherwise.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use xmpp_lambda_tests::muc::{
    destroy, expect_groupchat, expect_occupant, groupchat_within, invite_directly,
    invite_through_room, join_room, kick, say,
};
use xmpp_lambda_tests::{
    BotServer, Connector, Ejabberd, Moto, Prosody, QueueConsumer, Result, XmppServer, body_of,
    free_port, login,
};

/// How long anything that should happen may take.
const WAIT: Duration = Duration::from_secs(20);
/// How long to watch for something that must not happen.
const QUIET: Duration = Duration::from_millis(1500);
const LINK_UP: &str = "component link established";
const JOINED: &str = "joined room";
/// Rooms created by a test user are open at once (Prosody locks a new room
/// until it is configured otherwise).
const OPEN_ROOMS: &str = "muc_room_locking = false";

fn room(server: &impl XmppServer, name: &str) -> String {
    format!("{name}@{}", server.muc_domain())
}

/// A connector in `rooms` (with `extra` options), posting to `bot`, once it
/// has joined them all.
async fn connector_in(
    server: &impl XmppServer,
    bot: &BotServer,
    rooms: &[&str],
    extra: &[(&str, &str)],
) -> Result<Connector> {
    let url = bot.url();
    let list = rooms.join(",");
    let mut env = vec![
        ("COMPONENT_POST_URL", url.as_str()),
        ("COMPONENT_ROOMS", list.as_str()),
    ];
    env.extend_from_slice(extra);
    let connector = Connector::start_for(server, &env).await?;
    connector.wait_for_log(LINK_UP, WAIT).await?;
    connector
        .wait_for_log_count(JOINED, rooms.len(), WAIT)
        .await?;
    Ok(connector)
}

/// Mentions are answered in the room, other messages are not; the request
/// carries the room fields; a private message gets a private answer.
async fn mentions_and_private_messages(server: &impl XmppServer) -> Result<()> {
    let ops = room(server, "ops");
    let mut alice = login(server, "alice").await?;
    let mut bob = login(server, "bob").await?;
    join_room(&mut alice, &ops, "alice").await?;
    join_room(&mut bob, &ops, "bob").await?;
    let bot = BotServer::echo().await?;
    let _connector = connector_in(server, &bot, &[&ops], &[]).await?;
    expect_occupant(&mut alice, &ops, "bot", WAIT).await?;

    say(&mut alice, &ops, "bot: hello").await?;
    let (body, message) = expect_groupchat(&mut bob, &ops, "bot", WAIT).await?;
    assert_eq!(body, "Did you say bot: hello?");
    assert_eq!(message.attr("type"), Some("groupchat"));
    let (body, _) = expect_groupchat(&mut alice, &ops, "bot", WAIT).await?;
    assert_eq!(body, "Did you say bot: hello?");
    let requests = bot.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0].json;
    assert_eq!(request["room"], json!(ops));
    assert_eq!(request["nick"], json!("alice"));
    assert_eq!(request["mention"], json!(true));
    assert_eq!(request["type"], json!("groupchat"));
    assert_eq!(request["from"], json!(format!("{ops}/alice")));

    // No mention, no answer (mode mention).
    say(&mut alice, &ops, "good morning everyone").await?;
    let seen = groupchat_within(&mut bob, &ops, QUIET).await;
    assert!(seen.iter().all(|(nick, _)| nick != "bot"), "{seen:?}");
    assert_eq!(bot.requests().len(), 1, "not even asked");

    // A private message through the room: a private answer to alice only.
    alice
        .send_message_of_type(&format!("{ops}/bot"), "chat", "psst")
        .await?;
    let private = alice
        .recv_until(WAIT, |stanza| {
            stanza.name() == "message" && stanza.attr("type") == Some("chat")
        })
        .await
        .ok_or("no private answer")?;
    assert_eq!(private.attr("from"), Some(format!("{ops}/bot").as_str()));
    assert_eq!(body_of(&private).as_deref(), Some("Did you say psst?"));
    let seen = groupchat_within(&mut bob, &ops, QUIET).await;
    assert!(seen.iter().all(|(nick, _)| nick != "bot"), "{seen:?}");
    assert_eq!(bot.requests()[1].json["nick"], json!("alice"));
    Ok(())
}

#[tokio::test]
async fn prosody_room_mentions_and_private_messages() -> Result<()> {
    let prosody = Prosody::start_with_config(OPEN_ROOMS).await?;
    mentions_and_private_messages(&prosody).await
}

#[tokio::test]
async fn ejabberd_room_mentions_and_private_messages() -> Result<()> {
    let ejabberd = Ejabberd::start().await?;
    mentions_and_private_messages(&ejabberd).await
}

#[tokio::test]
async fn mode_all_answers_everyone_and_two_bots_never_answer_each_other() -> Result<()> {
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let prosody = Prosody::start_with_config(&format!(
        "{OPEN_ROOMS}\nComponent \"bot2.localhost\"\n    component_secret = \"{secret}\"\n"
    ))
    .await?;
    let ops = room(&prosody, "ops");
    let mut alice = login(&prosody, "alice").await?;
    join_room(&mut alice, &ops, "alice").await?;
    let bot = BotServer::echo().await?;
    let _first = connector_in(
        &prosody,
        &bot,
        &[&ops],
        &[("COMPONENT_ROOM_MESSAGES", "all")],
    )
    .await?;
    let _second = connector_in(
        &prosody,
        &bot,
        &[&ops],
        &[
            ("COMPONENT_ROOM_MESSAGES", "all"),
            ("COMPONENT_JID", "bot2.localhost"),
            ("COMPONENT_SECRET", &secret),
        ],
    )
    .await?;

    say(&mut alice, &ops, "hello all").await?;
    // Each bot answers alice once; neither answers the other.
    let seen = groupchat_within(&mut alice, &ops, Duration::from_secs(4)).await;
    let from_bots: Vec<&(String, String)> =
        seen.iter().filter(|(nick, _)| nick != "alice").collect();
    let first: Vec<_> = seen.iter().take(6).collect();
    assert_eq!(
        from_bots.len(),
        2,
        "{} messages, the first: {first:?}",
        seen.len()
    );
    assert!(
        from_bots
            .iter()
            .all(|(_, body)| body == "Did you say hello all?"),
        "{first:?}"
    );
    assert_eq!(bot.requests().len(), 2, "each bot was asked once");
    Ok(())
}

#[tokio::test]
async fn history_before_the_join_is_not_forwarded() -> Result<()> {
    let prosody = Prosody::start_with_config(OPEN_ROOMS).await?;
    let ops = room(&prosody, "ops");
    let mut alice = login(&prosody, "alice").await?;
    join_room(&mut alice, &ops, "alice").await?;
    say(&mut alice, &ops, "bot: a question from before").await?;
    let bot = BotServer::echo().await?;
    let _connector = connector_in(
        &prosody,
        &bot,
        &[&ops],
        &[("COMPONENT_ROOM_MESSAGES", "all")],
    )
    .await?;
    tokio::time::sleep(QUIET).await;
    assert!(bot.requests().is_empty(), "history reached the bot");
    say(&mut alice, &ops, "bot: a question now").await?;
    let (body, _) = expect_groupchat(&mut alice, &ops, "bot", WAIT).await?;
    assert_eq!(body, "Did you say bot: a question now?");
    Ok(())
}

#[tokio::test]
async fn a_taken_nick_becomes_nick_2() -> Result<()> {
    let prosody = Prosody::start_with_config(OPEN_ROOMS).await?;
    let ops = room(&prosody, "ops");
    let mut alice = login(&prosody, "alice").await?;
    join_room(&mut alice, &ops, "bot").await?;
    let bot = BotServer::echo().await?;
    let connector = connector_in(&prosody, &bot, &[&ops], &[]).await?;
    expect_occupant(&mut alice, &ops, "bot_2", WAIT).await?;
    assert!(
        connector
            .logs()
            .iter()
            .any(|l| l.contains("nick taken in room"))
    );
    say(&mut alice, &ops, "bot_2: are you there?").await?;
    let (body, _) = expect_groupchat(&mut alice, &ops, "bot_2", WAIT).await?;
    assert_eq!(body, "Did you say bot_2: are you there??");
    Ok(())
}

#[tokio::test]
async fn a_kicked_bot_rejoins() -> Result<()> {
    let prosody = Prosody::start_with_config(OPEN_ROOMS).await?;
    let ops = room(&prosody, "ops");
    let mut alice = login(&prosody, "alice").await?;
    join_room(&mut alice, &ops, "alice").await?;
    let bot = BotServer::echo().await?;
    let connector = connector_in(&prosody, &bot, &[&ops], &[]).await?;
    expect_occupant(&mut alice, &ops, "bot", WAIT).await?;

    kick(&mut alice, &ops, "bot", "testing").await?;
    let line = connector.wait_for_log("not in room", WAIT).await?;
    assert!(line.contains("kicked (testing)"), "{line}");
    expect_occupant(&mut alice, &ops, "bot", WAIT).await?;
    connector.wait_for_log_count(JOINED, 2, WAIT).await?;
    Ok(())
}

#[tokio::test]
async fn a_destroyed_room_is_retried_with_backoff_not_in_a_loop() -> Result<()> {
    // Only local users may create rooms: the bot cannot recreate it.
    let prosody =
        Prosody::start_with_config(&format!("{OPEN_ROOMS}\nrestrict_room_creation = \"local\""))
            .await?;
    let ops = room(&prosody, "ops");
    let mut alice = login(&prosody, "alice").await?;
    join_room(&mut alice, &ops, "alice").await?;
    let bot = BotServer::echo().await?;
    let connector = connector_in(&prosody, &bot, &[&ops], &[]).await?;

    destroy(&mut alice, &ops, "moving on").await?;
    let line = connector.wait_for_log("not in room", WAIT).await?;
    assert!(
        line.contains("the room was destroyed (moving on)"),
        "{line}"
    );
    let watched = Duration::from_secs(30);
    tokio::time::sleep(watched).await;
    let attempts = connector
        .logs()
        .iter()
        .filter(|l| l.contains("not in room; rejoining later"))
        .count();
    eprintln!("{attempts} attempts to be in the room in {watched:?}");
    // 1 removal + refusals at 1-2, 2-4, 4-8, 8-16 s…: a handful, not a loop.
    assert!(
        (2..=7).contains(&attempts),
        "{attempts} attempts in {watched:?}"
    );
    assert!(
        connector.logs().iter().any(|l| l.contains("join refused")),
        "the refusal is logged with the room's reason"
    );
    Ok(())
}

#[tokio::test]
async fn rooms_are_rejoined_soon_after_a_relink() -> Result<()> {
    let mut prosody = Prosody::start_with_config(OPEN_ROOMS).await?;
    let ops = room(&prosody, "ops");
    let bot = BotServer::echo().await?;
    let connector = connector_in(&prosody, &bot, &[&ops], &[]).await?;

    prosody.restart().await?;
    connector.wait_for_new_log(LINK_UP, WAIT).await?;
    let linked = Instant::now();
    connector.wait_for_log_count(JOINED, 2, WAIT).await?;
    let rejoin = linked.elapsed();
    eprintln!("rejoined {rejoin:?} after the relink");
    assert!(
        rejoin < Duration::from_secs(5),
        "rejoined {rejoin:?} after relink"
    );
    // The room was gone with the restart: the bot's join made it anew and
    // unlocked it, so a user can enter and talk to the bot.
    let mut alice = login(&prosody, "alice").await?;
    join_room(&mut alice, &ops, "alice").await?;
    say(&mut alice, &ops, "bot: back?").await?;
    let (body, _) = expect_groupchat(&mut alice, &ops, "bot", WAIT).await?;
    assert_eq!(body, "Did you say bot: back??");
    Ok(())
}

#[tokio::test]
async fn invitations_are_accepted_or_ignored() -> Result<()> {
    let prosody = Prosody::start_with_config(OPEN_ROOMS).await?;
    let party = room(&prosody, "party");
    let lounge = room(&prosody, "lounge");
    let mut alice = login(&prosody, "alice").await?;
    join_room(&mut alice, &party, "alice").await?;
    join_room(&mut alice, &lounge, "alice").await?;
    let bot = BotServer::echo().await?;
    let echo = format!("echo@{}", prosody.component_domain());

    let ignoring = connector_in(&prosody, &bot, &[], &[]).await?;
    invite_directly(&mut alice, &echo, &party).await?;
    ignoring.wait_for_log("invitation ignored", WAIT).await?;
    drop(ignoring);

    let accepting =
        connector_in(&prosody, &bot, &[], &[("COMPONENT_ROOM_INVITES", "accept")]).await?;
    invite_directly(&mut alice, &echo, &party).await?;
    expect_occupant(&mut alice, &party, "bot", WAIT).await?;
    invite_through_room(&mut alice, &echo, &lounge).await?;
    expect_occupant(&mut alice, &lounge, "bot", WAIT).await?;
    accepting
        .wait_for_log_count("invitation accepted", 2, WAIT)
        .await?;
    say(&mut alice, &lounge, "bot: thanks for coming").await?;
    let (body, _) = expect_groupchat(&mut alice, &lounge, "bot", WAIT).await?;
    assert_eq!(body, "Did you say bot: thanks for coming?");
    Ok(())
}

#[tokio::test]
async fn a_push_to_a_joined_room_is_groupchat() -> Result<()> {
    let prosody = Prosody::start_with_config(OPEN_ROOMS).await?;
    let ops = room(&prosody, "ops");
    let mut alice = login(&prosody, "alice").await?;
    join_room(&mut alice, &ops, "alice").await?;
    let bot = BotServer::echo().await?;
    let listen = format!("127.0.0.1:{}", free_port());
    let token = "room-push-token-0123456789abcdef-0123";
    let _connector = connector_in(
        &prosody,
        &bot,
        &[&ops],
        &[
            ("COMPONENT_API_LISTEN", &listen),
            ("COMPONENT_API_TOKEN", token),
        ],
    )
    .await?;
    let answer = reqwest::Client::new()
        .post(format!("http://{listen}/v1/send"))
        .bearer_auth(token)
        .json(&json!({"to": ops, "body": "deploy finished"}))
        .send()
        .await?;
    assert_eq!(answer.status(), 202);
    let (body, _) = expect_groupchat(&mut alice, &ops, "bot", WAIT).await?;
    assert_eq!(body, "deploy finished");
    Ok(())
}

#[tokio::test]
async fn rooms_work_through_the_sqs_transport() -> Result<()> {
    let prosody = Prosody::start_with_config(OPEN_ROOMS).await?;
    let ops = room(&prosody, "ops");
    let mut alice = login(&prosody, "alice").await?;
    join_room(&mut alice, &ops, "alice").await?;
    let moto = Moto::start().await?;
    let requests = moto.create_queue("requests").await?;
    let replies = moto.create_queue("replies").await?;
    let _consumer = QueueConsumer::start(&moto, &requests, &replies, &[("BOT", "echo")]).await?;
    let mut env = moto.sqs_transport_env(&requests, &replies);
    env.push(("COMPONENT_ROOMS", ops.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let connector = Connector::start_for(&prosody, &env).await?;
    connector.wait_for_log(JOINED, WAIT).await?;

    say(&mut alice, &ops, "bot: through the queues").await?;
    let (body, _) = expect_groupchat(&mut alice, &ops, "bot", WAIT).await?;
    assert_eq!(body, "Did you say bot: through the queues?");
    // The request envelope carried the room fields to the function and
    // back: the reply went to the room, as a bot's.
    Ok(())
}
