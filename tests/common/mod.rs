//! Shared test fixtures: a real server per test, on 127.0.0.1:0 with its own
//! temporary data directory, and real WebSocket clients.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use switchboard::client::{Client, Pushed};
use switchboard::config::Settings;
use switchboard::domain::ids::{ClientKind, Role};
use switchboard::protocol::{Entry, Event, Reply, RequestBody};
use switchboard::Application;

mod raw;
pub use raw::Raw;

/// Generous: CI machines are small and shared.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long to wait to be sure something does *not* arrive.
pub const QUIET: Duration = Duration::from_millis(400);

/// Everything pushed until nothing more comes for a while.
pub async fn pushed_until_quiet(c: &mut Client) -> Vec<Pushed> {
    let mut out = Vec::new();
    while let Some(p) = c.next_pushed(QUIET).await {
        out.push(p);
    }
    out
}

/// The demo catalog from config/default.toml, with the server settings
/// tests want: a free port and a fresh data directory.
pub fn test_settings(data_dir: &Path) -> Settings {
    let mut s = Settings::from_file(Path::new("config/default.toml"), true).expect("demo config");
    s.server.listen = "127.0.0.1:0".into();
    s.server.workers = 2;
    s.server.heartbeat_ms = 200;
    s.server.pong_timeout_ms = 5_000;
    s.store.data_dir = data_dir.to_path_buf();
    s
}

pub struct TestApp {
    pub port: u16,
    pub hub: std::sync::Arc<switchboard::actors::Hub>,
    pub stopper: switchboard::app::Stopper,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub async fn rep(&self, username: &str) -> Client {
        rep_at(&self.ws_url(), username).await
    }

    pub async fn customer(&self, kind: ClientKind) -> Client {
        customer_at(&self.ws_url(), kind).await
    }
}

/// Spawns the server in this test's actix system.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_with(dir, |_| {}).await
}

pub async fn spawn_app_with(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(dir.path());
    tweak(&mut settings);
    let app = Application::build(settings).await.expect("server starts");
    let port = app.port();
    let hub = app.hub();
    let stopper = app.stopper();
    actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        port,
        hub,
        stopper,
        dir,
    }
}

/// Demo passwords are `<username>-demo`.
pub async fn rep_at(url: &str, username: &str) -> Client {
    let mut c = Client::connect(url, Role::Rep, ClientKind::Desktop)
        .await
        .expect("rep connects");
    c.login(username, &format!("{username}-demo"))
        .await
        .expect("rep logs in");
    c
}

/// A customer's connection (not yet in a session).
pub async fn customer_at(url: &str, kind: ClientKind) -> Client {
    Client::connect(url, Role::Customer, kind)
        .await
        .expect("customer connects")
}

/// A customer who filed the issue form (issue type `vpn` goes to team
/// `network`).
pub async fn start_issue(
    customer: &mut Client,
    issue_type: &str,
    name: &str,
) -> switchboard::protocol::CustomerView {
    customer
        .start_session(
            Entry::IssueForm {
                issue_type: issue_type.into(),
            },
            name,
            "Acme",
            "it is broken",
        )
        .await
        .expect("session starts")
}

/// Waits for the popup alert of `session` on `rep`'s console.
pub async fn alert_for(rep: &mut Client, session: &str) -> Event {
    rep.wait_event(
        WAIT,
        |e| matches!(e, Event::QueueEntered { session: s, .. } if s.session == session),
    )
    .await
    .unwrap_or_else(|| panic!("no alert for session {session}"))
}

pub fn session_of(reply: &Reply) -> &switchboard::protocol::SessionDetails {
    match reply {
        Reply::Session { session } => session,
        other => panic!("expected a session reply, got {other:?}"),
    }
}

pub async fn accept(
    rep: &Client,
    session: &str,
) -> Result<Reply, switchboard::client::ClientError> {
    rep.request(RequestBody::Accept {
        session: session.into(),
    })
    .await
}

/// True if no event matching `want` arrives within [`QUIET`] while the
/// connection stays open: a server that dropped the connection has not
/// kept quiet, it has failed.
pub async fn stays_quiet(c: &mut Client, want: impl Fn(&Event) -> bool) -> bool {
    matches!(
        c.wait_for(QUIET, want).await,
        Err(switchboard::client::Missed::TimedOut)
    )
}

pub fn is_closed(p: &Option<Pushed>) -> bool {
    matches!(p, Some(Pushed::Closed))
}

/// The server binary as a child process (for kill -9 and SIGTERM tests).
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, extra_env: &[(&str, &str)]) -> ServerProcess {
        let mut cmd = server_command(data_dir, extra_env);
        cmd.stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("server binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let port = read_port(stdout);
        ServerProcess { child, port }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// A demo rep logged in to this server.
    pub async fn rep(&self, username: &str) -> Client {
        rep_at(&self.ws_url(), username).await
    }

    /// A customer's connection to this server.
    pub async fn customer(&self, kind: ClientKind) -> Client {
        customer_at(&self.ws_url(), kind).await
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        self.child.wait().expect("server exits")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server binary on a free port of 127.0.0.1 with the demo catalog,
/// data in `data_dir`, `warn` logging and `extra_env` on top; its stdout
/// (where it prints its port) piped. The caller decides where stderr goes.
pub fn server_command(data_dir: &Path, extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.env("SWITCHBOARD_CONFIG", config_path())
        .env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
        .env("SWITCHBOARD_DATA_DIR", data_dir)
        .env("SWITCHBOARD_LOG_LEVEL", "warn")
        .stdout(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

pub fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml")
}

fn read_port(stdout: std::process::ChildStdout) -> u16 {
    use std::io::{BufRead, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(p) = line.strip_prefix("switchboard listening on port ") {
                let _ = tx.send(p.trim().parse::<u16>().ok());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .ok()
        .flatten()
        .expect("server prints its port")
}

/// The server's log (stderr), line by line, as it is written.
pub type LogLines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// How many lines of `log` so far contain `what`.
pub fn lines_saying(log: &LogLines, what: &str) -> usize {
    let lines = log.lock().unwrap_or_else(|p| p.into_inner());
    lines.iter().filter(|l| l.contains(what)).count()
}

/// What a child writes to `output`, line by line as it comes, gathered
/// by a thread of its own.
pub fn capture_lines(output: impl std::io::Read + Send + 'static) -> LogLines {
    use std::io::{BufRead, BufReader};
    let lines: LogLines = Default::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    lines
}

/// Like [`ServerProcess::start`], but the server's stderr (its log) is
/// captured into the returned lines instead of inherited.
pub fn start_capturing_log(
    data_dir: &Path,
    extra_env: &[(&str, &str)],
) -> (ServerProcess, LogLines) {
    spawn_capturing_log(server_command(data_dir, extra_env))
}

/// Starts `cmd` (a [`server_command`], perhaps changed further) with its
/// log captured, and waits for its port.
pub fn spawn_capturing_log(mut cmd: Command) -> (ServerProcess, LogLines) {
    cmd.stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("server binary starts");
    let lines = capture_lines(child.stderr.take().expect("stderr"));
    let stdout = child.stdout.take().expect("stdout");
    let port = read_port(stdout);
    (ServerProcess { child, port }, lines)
}

// --- Helpers of the supervisor tests (rules, fallback, routing, recovery). ---

/// One REST call to the server on `port`: the status and the JSON body
/// (`null` when empty).
pub async fn rest_json(
    port: u16,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().request(method, format!("http://127.0.0.1:{port}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("server answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let value = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
    };
    (status, value)
}

/// A REST bearer token for a demo rep (`<username>-demo`).
pub async fn rest_login(port: u16, user: &str) -> String {
    let (status, body) = rest_json(
        port,
        reqwest::Method::POST,
        "/api/login",
        None,
        Some(serde_json::json!({"username": user, "password": format!("{user}-demo")})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("a token").to_string()
}

/// The reply to `body`, or a panic naming the request.
pub async fn reply_of(c: &Client, body: RequestBody) -> Reply {
    let name = body.type_name();
    c.request(body)
        .await
        .unwrap_or_else(|e| panic!("{name} failed: {e}"))
}

/// A queue as `c` (a rep who sees it) views it, in queue order.
pub async fn queue_of(c: &Client, queue: &str) -> switchboard::protocol::QueueView {
    match reply_of(
        c,
        RequestBody::ViewQueue {
            queue: queue.parse().expect("a queue id"),
            sort: Default::default(),
        },
    )
    .await
    {
        Reply::QueueView(v) => v,
        other => panic!("expected a queue view, got {other:?}"),
    }
}

/// A session's details as `c` sees them.
pub async fn details_of(c: &Client, session: &str) -> switchboard::protocol::SessionDetails {
    session_of(
        &reply_of(
            c,
            RequestBody::SessionDetails {
                session: session.into(),
            },
        )
        .await,
    )
    .clone()
}

/// Polls `check` every 25 ms until it answers `Some`; panics after
/// `within`, naming `what`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A request that must succeed; panics with the request's type otherwise.
/// (The same as [`reply_of`], under the name the flows tests use.)
pub async fn ok(c: &Client, body: RequestBody) -> Reply {
    reply_of(c, body).await
}

/// A request that must be refused by the server; answers its error code.
pub async fn refused(c: &Client, body: RequestBody) -> switchboard::error::ErrorCode {
    let e = c.request(body).await.expect_err("request is refused");
    e.code()
        .unwrap_or_else(|| panic!("not a server error: {e}"))
}

/// `GET /api/sessions/{session}` as the holder of `token`: the status and
/// the JSON body.
pub async fn rest_session(port: u16, token: &str, session: &str) -> (u16, serde_json::Value) {
    rest_json(
        port,
        reqwest::Method::GET,
        &format!("/api/sessions/{session}"),
        Some(token),
        None,
    )
    .await
}

/// A session's details (with history) through the REST API.
pub async fn rest_details(
    port: u16,
    token: &str,
    session: &str,
) -> switchboard::protocol::SessionDetails {
    let (status, body) = rest_session(port, token, session).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).expect("session details")
}

// --- What a session's details say. ---

/// The queue a session waits in (`team:network`, `rep:bob`), or `None`
/// when it is not waiting.
pub fn waiting_in(d: &switchboard::protocol::SessionDetails) -> Option<String> {
    match &d.state {
        switchboard::domain::session::SessionState::Waiting { queue } => Some(queue.to_string()),
        _ => None,
    }
}

// --- Requests of a rep in a session, for `ok`, `reply_of` and `refused`. ---

/// Transfer `session` to the queue `to` (`team:billing`, `rep:bob`).
pub fn transfer(session: &str, to: &str) -> RequestBody {
    RequestBody::Transfer {
        session: session.into(),
        to: to.parse().unwrap(),
    }
}

/// Invite the queue `to` (a rep's personal queue or a team queue) to share
/// `session`.
pub fn invite(session: &str, to: &str) -> RequestBody {
    RequestBody::Invite {
        session: session.into(),
        to: to.parse().unwrap(),
    }
}

/// Join `session` on an invitation.
pub fn join(session: &str) -> RequestBody {
    RequestBody::Join {
        session: session.into(),
    }
}

/// Leave a shared `session`.
pub fn leave(session: &str) -> RequestBody {
    RequestBody::Leave {
        session: session.into(),
    }
}

/// A customer's `resume_session` with `token`, from the start of the
/// session's stream.
pub fn resume_session(token: &str) -> RequestBody {
    RequestBody::ResumeSession {
        token: token.into(),
        resume: None,
    }
}

/// End `session` for everyone (a rep's request; a customer sends
/// `EndSession { session: None }`).
pub fn end_session(session: &str) -> RequestBody {
    RequestBody::EndSession {
        session: Some(session.into()),
    }
}

/// Sends the chat line `text`: a rep names the session, a customer sends
/// `None`. Panics if the server refuses it.
pub async fn chat(c: &Client, session: Option<&str>, text: &str) {
    reply_of(
        c,
        RequestBody::Chat {
            session: session.map(str::to_string),
            text: text.into(),
        },
    )
    .await;
}

/// Waits for the chat line `text` to reach `c`; `None` after [`WAIT`].
pub async fn hears(c: &mut Client, text: &str) -> Option<Event> {
    c.wait_event(
        WAIT,
        |e| matches!(e, Event::Chat { line, .. } if line.text == text),
    )
    .await
}

/// Waits for the popup alert of `session` on `rep`'s console: the queue it
/// entered (`team:network`) and the session as the alert shows it.
pub async fn alert_queue(
    rep: &mut Client,
    session: &str,
) -> (String, switchboard::domain::queue::SessionSummary) {
    match alert_for(rep, session).await {
        Event::QueueEntered { queue, session, .. } => (queue.to_string(), (*session).clone()),
        other => panic!("{other:?}"),
    }
}

/// Waits for a customer to be told their session now waits in the queue
/// named `queue_name` (after a transfer, a rule's move or a requeue);
/// `None` after [`WAIT`].
pub async fn told_transferred(customer: &mut Client, queue_name: &str) -> Option<Event> {
    customer
        .wait_event(
            WAIT,
            |e| matches!(e, Event::Transferred { queue_name: q } if q == queue_name),
        )
        .await
}

/// A REST answer of `409 conflict` whose message says `why`.
pub fn assert_conflict(status: u16, body: &serde_json::Value, why: &str) {
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(why), "{body}");
}
