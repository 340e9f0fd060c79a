//! A terminal client for Switchboard: a rep console or a customer, one
//! command per line, replies and pushed events printed as JSON.
//!
//! ```text
//! switchboard-cli rep alice alice-demo
//! switchboard-cli customer issue vpn "Dana Customer"
//! switchboard-cli --mobile customer key 7k3m9q2x4bcd "Erin"
//! ```
//! Type `help` once connected. A console whose connection drops (the
//! server restarting, say) reconnects by itself for about a minute and
//! resumes where it was.
use std::time::Duration;

use clap::{Parser, Subcommand};
use switchboard::client::{Client, ClientError, Pushed};
use switchboard::domain::ids::{ClientKind, Role};
use switchboard::domain::queue::SortBy;
use switchboard::domain::rep_state::RepStatus;
use switchboard::error::ErrorCode;
use switchboard::protocol::{Entry, Event, Reply, RequestBody};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Parser)]
#[command(name = "switchboard-cli", about = "Terminal client for Switchboard")]
struct Args {
    /// The server's WebSocket URL.
    #[arg(
        long,
        default_value = "ws://127.0.0.1:8080/ws",
        env = "SWITCHBOARD_URL"
    )]
    url: String,
    /// Connect as a mobile client (customers: the session is view-only).
    #[arg(long)]
    mobile: bool,
    #[command(subcommand)]
    who: Who,
}

#[derive(Subcommand)]
enum Who {
    /// A rep console.
    Rep { username: String, password: String },
    /// A customer starting a session.
    Customer {
        #[command(subcommand)]
        via: Via,
    },
}

#[derive(Subcommand)]
enum Via {
    /// The issue submission form.
    Issue {
        issue_type: String,
        name: String,
        #[arg(long, default_value = "")]
        company: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// A one-time session key from a rep.
    Key { key: String, name: String },
    /// A rep chosen from the public list.
    Rep { rep: String, name: String },
    /// A support button.
    Button { button: String, name: String },
    /// A web page's help link (a browser sharing session).
    Link { link: String, name: String },
}

const REP_HELP: &str = "commands: queues | view <queue> [wait|name|issue] | details <session> | accept <session> | next \
| transfer <session> <queue> | invite <session> <queue> | join <session> | leave <session> | end <session> \
| chat <session> <text> | history <session> | control <session> <input> | look <session> | mine | star <queue> \
| unstar <queue> | teamchat <team> <text> | teamlog <team> | read <team> | key <seconds> | teams | reps \
| status available|busy|away | auto on|off | decline <session> | quit\n\
queues are team:<id> or rep:<id>";
const CUSTOMER_HELP: &str = "commands: chat <text> | history | reps | end | quit";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let kind = if args.mobile {
        ClientKind::Mobile
    } else {
        ClientKind::Desktop
    };
    let code = match run(args, kind).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("switchboard-cli: {e}");
            1
        }
    };
    // Not a return: the runtime would wait for the thread reading stdin,
    // which waits for a line that may never come (a console that ends
    // because its server will not take it back).
    std::process::exit(code);
}

async fn run(args: Args, kind: ClientKind) -> Result<(), String> {
    let role = match args.who {
        Who::Rep { .. } => Role::Rep,
        Who::Customer { .. } => Role::Customer,
    };
    let kind = match &args.who {
        Who::Customer {
            via: Via::Link { .. },
        } => ClientKind::Browser,
        _ => kind,
    };
    let mut client = Client::connect(&args.url, role, kind)
        .await
        .map_err(|e| e.to_string())?;
    match args.who {
        Who::Rep { username, password } => {
            let r = client
                .login(&username, &password)
                .await
                .map_err(|e| e.to_string())?;
            print_json("logged in", &r);
            println!("{REP_HELP}");
        }
        Who::Customer { via } => {
            let (entry, name, company, description) = match via {
                Via::Issue {
                    issue_type,
                    name,
                    company,
                    description,
                } => (Entry::IssueForm { issue_type }, name, company, description),
                Via::Key { key, name } => (
                    Entry::SessionKey { key },
                    name,
                    String::new(),
                    String::new(),
                ),
                Via::Rep { rep, name } => (Entry::Rep { rep }, name, String::new(), String::new()),
                Via::Button { button, name } => (
                    Entry::SupportButton { button },
                    name,
                    String::new(),
                    String::new(),
                ),
                Via::Link { link, name } => {
                    (Entry::HelpLink { link }, name, String::new(), String::new())
                }
            };
            let view = client
                .start_session(entry, &name, &company, &description)
                .await
                .map_err(|e| e.to_string())?;
            print_json("session", &view);
            println!("{CUSTOMER_HELP}");
        }
    }

    let (line_tx, mut lines) = tokio::sync::mpsc::channel::<String>(16);
    tokio::spawn(async move {
        let mut stdin = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = stdin.next_line().await {
            if line_tx.send(line).await.is_err() {
                break;
            }
        }
    });
    let mut session_over = false;
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                let line = line.trim();
                if line.is_empty() { continue; }
                if line == "quit" { break; }
                if line == "help" {
                    println!("{}", if role == Role::Rep { REP_HELP } else { CUSTOMER_HELP });
                    continue;
                }
                match parse(role, line) {
                    Ok(body) => match client.request(body).await {
                        Ok(reply) => print_json("reply", &reply),
                        Err(e) => println!("error: {e}"),
                    },
                    Err(e) => println!("{e} (type help)"),
                }
            }
            pushed = client.next_pushed(Duration::from_secs(3600)) => match pushed {
                Some(Pushed::Event { seq, event, .. }) => {
                    // A customer's connection serves one session: once it
                    // has ended there is nothing to come back to.
                    if role == Role::Customer && matches!(event, Event::SessionEnded { .. }) {
                        session_over = true;
                    }
                    print_json(&format!("event #{seq}"), &event)
                }
                Some(Pushed::Snapshot { snapshot, .. }) => print_json("snapshot", &snapshot),
                Some(Pushed::Goodbye { reason }) => println!("server says goodbye: {reason}"),
                Some(Pushed::Error { code, message }) => println!("error {code}: {message}"),
                Some(Pushed::Closed) if session_over => {
                    println!("connection closed; the session had ended");
                    break;
                }
                Some(Pushed::Closed) => {
                    println!("connection closed: reconnecting");
                    match reconnect(&mut client).await {
                        Ok(reply) => print_json("reconnected", &reply),
                        Err(e) => { println!("cannot reconnect: {e}"); break; }
                    }
                }
                None => {}
            }
        }
    }
    client.close().await;
    Ok(())
}

/// The pauses before each attempt to reconnect, about a minute in all:
/// long enough for a server to restart, short enough that a console whose
/// server is gone for good says so.
const RECONNECT_PAUSES_MS: [u64; 8] = [250, 500, 1_000, 2_000, 4_000, 8_000, 15_000, 30_000];

/// Opens a new connection, logs in again (the rep's token, the customer's
/// session token) and resumes: the events missed meanwhile follow as
/// events, or as a snapshot if the server no longer holds them. A server
/// that answers with a refusal (the session ended, the token revoked) is
/// not asked again; one that cannot be reached, or is stopping, is.
async fn reconnect(client: &mut Client) -> Result<Reply, ClientError> {
    let mut last = ClientError::Closed;
    for pause in RECONNECT_PAUSES_MS {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        match client.reconnect().await {
            Ok(reply) => return Ok(reply),
            Err(e) if !worth_retrying(&e) => return Err(e),
            Err(e) => {
                println!("reconnect failed ({e}): trying again");
                last = e;
            }
        }
    }
    Err(last)
}

fn worth_retrying(e: &ClientError) -> bool {
    match e.code() {
        None => true,
        Some(code) => matches!(
            code,
            ErrorCode::ShuttingDown | ErrorCode::StorageError | ErrorCode::Internal
        ),
    }
}

fn print_json(label: &str, value: &impl serde::Serialize) {
    println!(
        "{label}: {}",
        serde_json::to_string(value).unwrap_or_default()
    );
}

/// One command line to a request.
fn parse(role: Role, line: &str) -> Result<RequestBody, String> {
    let mut words = line.splitn(3, ' ');
    let cmd = words.next().unwrap_or_default();
    let a = words.next().map(str::to_string);
    let b = words.next().map(str::to_string);
    let need = |v: Option<String>, what: &str| v.ok_or_else(|| format!("'{cmd}' needs {what}"));
    let queue = |v: Option<String>| -> Result<_, String> {
        need(v, "a queue")?
            .parse()
            .map_err(|e: switchboard::error::AppError| e.message)
    };
    if role == Role::Customer {
        return match cmd {
            "chat" => Ok(RequestBody::Chat {
                session: None,
                text: [a, b].into_iter().flatten().collect::<Vec<_>>().join(" "),
            }),
            "history" => Ok(RequestBody::ChatHistory { session: None }),
            "reps" => Ok(RequestBody::PublicReps),
            "end" => Ok(RequestBody::EndSession { session: None }),
            _ => Err(format!("unknown command '{cmd}'")),
        };
    }
    Ok(match cmd {
        "queues" => RequestBody::ListQueues,
        "view" => RequestBody::ViewQueue {
            queue: queue(a)?,
            sort: match b.as_deref() {
                Some("name") => SortBy::Name,
                Some("issue") => SortBy::Issue,
                _ => SortBy::Wait,
            },
        },
        "details" => RequestBody::SessionDetails {
            session: need(a, "a session")?,
        },
        "accept" => RequestBody::Accept {
            session: need(a, "a session")?,
        },
        "next" => RequestBody::GetNext,
        "transfer" => RequestBody::Transfer {
            session: need(a, "a session")?,
            to: queue(b)?,
        },
        "invite" => RequestBody::Invite {
            session: need(a, "a session")?,
            to: queue(b)?,
        },
        "join" => RequestBody::Join {
            session: need(a, "a session")?,
        },
        "leave" => RequestBody::Leave {
            session: need(a, "a session")?,
        },
        "end" => RequestBody::EndSession {
            session: Some(need(a, "a session")?),
        },
        "chat" => RequestBody::Chat {
            session: Some(need(a, "a session")?),
            text: need(b, "text")?,
        },
        "history" => RequestBody::ChatHistory {
            session: Some(need(a, "a session")?),
        },
        "control" => RequestBody::Control {
            session: need(a, "a session")?,
            input: need(b, "an input")?,
        },
        "look" => RequestBody::RequestView {
            session: need(a, "a session")?,
        },
        "mine" => RequestBody::MySessions,
        "star" => RequestBody::Star { queue: queue(a)? },
        "unstar" => RequestBody::Unstar { queue: queue(a)? },
        "teamchat" => RequestBody::TeamChat {
            team: need(a, "a team")?,
            text: need(b, "text")?,
        },
        "teamlog" => RequestBody::TeamChatHistory {
            team: need(a, "a team")?,
        },
        "read" => RequestBody::MarkTeamChatRead {
            team: need(a, "a team")?,
        },
        "key" => RequestBody::GenerateSessionKey {
            valid_for_secs: need(a, "seconds")?
                .parse()
                .map_err(|_| "seconds must be a number".to_string())?,
            portal: None,
        },
        "status" => RequestBody::SetStatus {
            status: match a.as_deref() {
                Some("available") => RepStatus::Available,
                Some("busy") => RepStatus::Busy,
                Some("away") => RepStatus::Away,
                _ => return Err("'status' needs available, busy or away".into()),
            },
        },
        "auto" => RequestBody::SetAutoAssign {
            enabled: match a.as_deref() {
                Some("on") => true,
                Some("off") => false,
                _ => return Err("'auto' needs on or off".into()),
            },
        },
        "decline" => RequestBody::DeclineOffer {
            session: need(a, "a session")?,
        },
        "teams" => RequestBody::ListTeams,
        "reps" => RequestBody::ListReps,
        _ => return Err(format!("unknown command '{cmd}'")),
    })
}
